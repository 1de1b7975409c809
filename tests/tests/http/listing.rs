//! `GET /files`: the caller's own files, newest first, paginated by an opaque cursor.

use std::collections::HashSet;

use serde_json::Value;
use stowage_tests::TestServer;

use crate::common::{file_id, get, json_with_status, parse_rfc3339_utc};

/// Uploads `count` small files as `auth`, one after another; returns their ids, oldest first.
async fn upload_many(server: &TestServer, auth: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let info = server
            .upload_ok(auth, &format!("f{i}.txt"), "text/plain", vec![b'x'; i + 1])
            .await;
        ids.push(file_id(&info));
    }
    ids
}

async fn list(server: &TestServer, auth: &str, query: &str) -> Value {
    json_with_status(get(server, auth, &format!("/files{query}")).await, 200).await
}

fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items is not an array: {page}"))
        .iter()
        .map(file_id)
        .collect()
}

#[tokio::test]
async fn listing_is_empty_for_new_caller() {
    let server = TestServer::spawn().await;

    let page = list(&server, &server.bearer(Some(1), 1), "").await;

    assert_eq!(page, serde_json::json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn listing_returns_own_files_newest_first() {
    let server = TestServer::spawn().await;
    let mine = server.bearer(Some(1), 1);
    let ids = upload_many(&server, &mine, 3).await;
    upload_many(&server, &server.bearer(Some(2), 1), 1).await;
    upload_many(&server, &server.bearer(None, 1), 1).await;
    upload_many(&server, &server.bearer(Some(3), 2), 1).await;

    let page = list(&server, &mine, "").await;

    let newest_first: Vec<String> = ids.into_iter().rev().collect();
    assert_eq!(ids_of(&page), newest_first, "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    let times: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| parse_rfc3339_utc(i["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    for item in page["items"].as_array().unwrap() {
        assert_eq!(item["user_id"], 1, "{item}");
        assert_eq!(item["account_id"], 1, "{item}");
        assert!(
            item["public_url"]
                .as_str()
                .unwrap()
                .starts_with(&server.base_url)
        );
    }
}

#[tokio::test]
async fn listing_leaves_out_the_same_user_id_in_another_account() {
    let server = TestServer::spawn().await;
    let mine = upload_many(&server, &server.bearer(Some(1), 1), 2).await;
    let namesake = server.bearer(Some(1), 2);
    let theirs = upload_many(&server, &namesake, 1).await;

    let my_page = list(&server, &server.bearer(Some(1), 1), "").await;
    let their_page = list(&server, &namesake, "").await;

    let newest_first: Vec<String> = mine.into_iter().rev().collect();
    assert_eq!(ids_of(&my_page), newest_first, "{my_page}");
    assert_eq!(ids_of(&their_page), theirs, "{their_page}");
}

#[tokio::test]
async fn listing_for_null_user_shows_only_account_level_files() {
    let server = TestServer::spawn().await;
    let account = server.bearer(None, 1);
    let shared = upload_many(&server, &account, 2).await;
    upload_many(&server, &server.bearer(Some(1), 1), 1).await;
    upload_many(&server, &server.bearer(None, 2), 1).await;

    let page = list(&server, &account, "").await;

    let newest_first: Vec<String> = shared.into_iter().rev().collect();
    assert_eq!(ids_of(&page), newest_first, "{page}");
    for item in page["items"].as_array().unwrap() {
        assert!(item["user_id"].is_null(), "{item}");
        assert_eq!(item["account_id"], 1, "{item}");
    }
}

#[tokio::test]
async fn listing_paginates_each_file_exactly_once() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let ids = upload_many(&server, &auth, 5).await;
    upload_many(&server, &server.bearer(Some(2), 1), 2).await;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list(&server, &auth, &query).await;
        let page_ids = ids_of(&page);
        sizes.push(page_ids.len());
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(sizes.len() < 10, "pagination does not end");
                query = format!("?limit=2&cursor={cursor}");
            }
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                break;
            }
        }
    }

    assert_eq!(sizes, [2, 2, 1], "page sizes");
    let newest_first: Vec<String> = ids.into_iter().rev().collect();
    assert_eq!(seen, newest_first, "every file once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
}

#[tokio::test]
async fn listing_cursor_pages_stay_stable_after_a_new_upload() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let ids = upload_many(&server, &auth, 4).await;

    let first = list(&server, &auth, "?limit=2").await;
    upload_many(&server, &auth, 1).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(&server, &auth, &format!("?limit=2&cursor={cursor}")).await;

    assert_eq!(ids_of(&first), [ids[3].clone(), ids[2].clone()]);
    assert_eq!(ids_of(&second), [ids[1].clone(), ids[0].clone()]);
}
