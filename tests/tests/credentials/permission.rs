//! The permission callback: who is asked, what is sent (form body and the caller's credential in
//! its header form), and how each answer maps to the response (fail closed).

use std::time::{Duration, Instant};

use reqwest::Method;
use stowage_tests::{TestServer, client, free_port, header_of, upload_as_owner};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{
    PUBLIC_P5, USER_P5, assert_log_free_of, create_signed_url, expect_error, file_id, get_with,
    json_with_status, opaque_token, redis_set, redis_url, send, signature_of, signed_url,
    store_user_token, unique_prefix,
};

const CHECK_PATH: &str = "/api/files/permission";

/// A permission service answering every POST with `status`.
async fn permission_service(status: u16) -> MockServer {
    let mock = MockServer::start().await;
    answer_with(&mock, status).await;
    mock
}

/// (Re)mounts `status` as the answer to every POST.
async fn answer_with(mock: &MockServer, status: u16) {
    mock.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(mock)
        .await;
}

/// A server asking `check_url`, with `extra` settings.
async fn spawn_asking(check_url: &str, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("PERMISSION_CHECK_URL", check_url)];
    env.extend_from_slice(extra);
    TestServer::spawn_with(&env).await
}

/// Uploads a file as user 1 of account 1 and returns its id.
async fn upload_by_owner(server: &TestServer) -> String {
    file_id(&upload_as_owner(server, "plan.txt", "text/plain", b"the plan").await)
}

/// The requests the permission service received.
async fn received(mock: &MockServer) -> Vec<wiremock::Request> {
    mock.received_requests().await.unwrap_or_default()
}

/// Asserts the service received exactly one well-formed check of `id` and returns it.
async fn assert_one_check_of(mock: &MockServer, id: &str) -> wiremock::Request {
    let requests = received(mock).await;
    assert_eq!(
        requests.len(),
        1,
        "permission service calls: {:?}",
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect::<Vec<_>>()
    );
    let request = requests.into_iter().next().unwrap();
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), CHECK_PATH);
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        format!("file_id={id}"),
        "form body"
    );
    let content_type = header_of(&request.headers, "content-type").unwrap_or_default();
    assert_eq!(
        content_type.split(';').next().unwrap_or_default().trim(),
        "application/x-www-form-urlencoded",
        "Content-Type of the check"
    );
    request
}

/// A service allowing every file, a server asking it, and a file of the owner there; returns the
/// service, the server and the file's id.
async fn asking_an_allowing_service() -> (MockServer, TestServer, String) {
    let mock = permission_service(204).await;
    let server = spawn_asking(&format!("{}{CHECK_PATH}", mock.uri()), &[]).await;
    let id = upload_by_owner(&server).await;
    (mock, server, id)
}

/// GETs file `id` with `headers`, asserts it was served, and returns the one check that allowed it.
async fn read_allowed(
    mock: &MockServer,
    server: &TestServer,
    id: &str,
    headers: &[(&str, &str)],
) -> wiremock::Request {
    let response = get_with(server, &format!("/files/{id}"), headers).await;
    assert_eq!(response.status(), 200, "GET with {headers:?}");
    assert_one_check_of(mock, id).await
}

/// A reader (user 2 of account 1) GETs the owner's file while the service answers `status`.
async fn read_by_other_user_when_service_answers(
    status: u16,
) -> (reqwest::Response, MockServer, String) {
    let mock = permission_service(status).await;
    let server = spawn_asking(&format!("{}{CHECK_PATH}", mock.uri()), &[]).await;
    let id = upload_by_owner(&server).await;
    let reader = server.bearer(Some(2), 1);

    let response = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Authorization", &reader)],
    )
    .await;

    (response, mock, id)
}

#[tokio::test]
async fn permission_check_gets_form_post_with_callers_bearer_and_204_allows() {
    let mock = permission_service(204).await;
    // A process: the test reads its log.
    let check_url = format!("{}{CHECK_PATH}", mock.uri());
    let server = TestServer::process_with(&[("PERMISSION_CHECK_URL", &check_url)]).await;
    let owner_jwt = server.token(Some(1), 1);
    let info = server
        .upload_ok(
            &format!("Bearer {owner_jwt}"),
            "plan.txt",
            "text/plain",
            b"the plan".to_vec(),
        )
        .await;
    let id = file_id(&info);
    let reader_jwt = server.token(Some(2), 1);

    let response = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Authorization", &format!("Bearer {reader_jwt}"))],
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"the plan");
    let check = assert_one_check_of(&mock, &id).await;
    assert_eq!(
        header_of(&check.headers, "authorization"),
        Some(format!("Bearer {reader_jwt}")),
        "the caller's credential is forwarded"
    );
    assert_eq!(header_of(&check.headers, "x-guest-authorization"), None);
    let url = signed_url(&server, &format!("Bearer {owner_jwt}"), &id).await;
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    assert_log_free_of(
        &server,
        &[
            ("AUTH_SECRET_KEY", &server.secret),
            ("the owner's JWT", &owner_jwt),
            ("the reader's JWT", &reader_jwt),
            ("the signed URL's signature", &signature_of(&url)),
        ],
    );
}

#[tokio::test]
async fn permission_check_denials_and_failures_map_to_contract_errors() {
    // 403, 404 and 401 deny the file; a 500 means the service could not decide.
    for (answer, status, code) in [
        (403, 403, "FILE_ACCESS_DENIED"),
        (404, 403, "FILE_ACCESS_DENIED"),
        (401, 403, "FILE_ACCESS_DENIED"),
        (500, 503, "PERMISSION_SERVICE_UNAVAILABLE"),
    ] {
        let (response, mock, id) = read_by_other_user_when_service_answers(answer).await;

        expect_error(response, status, code).await;
        assert_one_check_of(&mock, &id).await;
    }
}

#[tokio::test]
async fn permission_check_200_is_not_an_allow() {
    let (response, _mock, _id) = read_by_other_user_when_service_answers(200).await;

    expect_error(response, 503, "PERMISSION_SERVICE_UNAVAILABLE").await;
}

#[tokio::test]
async fn permission_check_slower_than_timeout_is_permission_service_unavailable() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_secs(3)))
        .mount(&mock)
        .await;
    let server = spawn_asking(
        &format!("{}{CHECK_PATH}", mock.uri()),
        &[("PERMISSION_CHECK_TIMEOUT_MS", "300")],
    )
    .await;
    let id = upload_by_owner(&server).await;

    let started = Instant::now();
    let response = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Authorization", &server.bearer(Some(2), 1))],
    )
    .await;
    let elapsed = started.elapsed();

    expect_error(response, 503, "PERMISSION_SERVICE_UNAVAILABLE").await;
    assert!(
        elapsed < Duration::from_millis(2500),
        "the 300 ms timeout was not applied: answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn permission_check_unreachable_is_permission_service_unavailable() {
    let closed = format!("http://127.0.0.1:{}{CHECK_PATH}", free_port());
    let server = spawn_asking(&closed, &[]).await;
    let id = upload_by_owner(&server).await;

    let response = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Authorization", &server.bearer(Some(2), 1))],
    )
    .await;

    expect_error(response, 503, "PERMISSION_SERVICE_UNAVAILABLE").await;
}

#[tokio::test]
async fn permission_check_is_not_made_for_the_owner() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .expect(0)
        .mount(&mock)
        .await;
    let server = spawn_asking(&format!("{}{CHECK_PATH}", mock.uri()), &[]).await;
    let id = upload_by_owner(&server).await;
    let owner = server.bearer(Some(1), 1);
    let path = format!("/files/{id}");

    let download = get_with(&server, &path, &[("Authorization", &owner)]).await;
    let head = send(&server, Method::HEAD, &path, &[("Authorization", &owner)]).await;
    let info = get_with(
        &server,
        &format!("{path}/info"),
        &[("Authorization", &owner)],
    )
    .await;
    let signed = create_signed_url(&server, &owner, &id, None).await;

    assert_eq!(download.status(), 200);
    assert_eq!(head.status(), 200);
    assert_eq!(info.status(), 200);
    assert_eq!(signed.status(), 200);
    mock.verify().await;
}

#[tokio::test]
async fn permission_check_is_not_made_for_account_level_files_of_the_same_account() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .expect(0)
        .mount(&mock)
        .await;
    let server = spawn_asking(&format!("{}{CHECK_PATH}", mock.uri()), &[]).await;
    let account_level = server.bearer(None, 1);
    let info = server
        .upload_ok(
            &account_level,
            "shared.txt",
            "text/plain",
            b"shared".to_vec(),
        )
        .await;

    let download = get_with(
        &server,
        &format!("/files/{}", file_id(&info)),
        &[("Authorization", &account_level)],
    )
    .await;

    assert_eq!(download.status(), 200);
    mock.verify().await;
}

#[tokio::test]
async fn permission_check_forwards_guest_jwt_as_x_guest_authorization() {
    let (mock, server, id) = asking_an_allowing_service().await;
    let guest = server.guest_token(Some(3), 1, 21);

    let check = read_allowed(&mock, &server, &id, &[("X-Guest-Authorization", &guest)]).await;

    assert_eq!(
        header_of(&check.headers, "x-guest-authorization"),
        Some(guest)
    );
    assert_eq!(
        header_of(&check.headers, "authorization"),
        None,
        "only the guest credential is sent"
    );
}

#[tokio::test]
async fn permission_check_forwards_guest_cookie_in_header_form() {
    let (mock, server, id) = asking_an_allowing_service().await;
    let guest = server.guest_token(Some(3), 1, 21);
    let cookie = format!("guest-token={guest}");

    let check = read_allowed(&mock, &server, &id, &[("Cookie", &cookie)]).await;

    assert_eq!(
        header_of(&check.headers, "x-guest-authorization"),
        Some(guest)
    );
    assert_eq!(
        header_of(&check.headers, "cookie"),
        None,
        "the credential goes in its header form"
    );
}

#[tokio::test]
async fn permission_check_forwards_user_jwt_from_guest_positions_as_bearer() {
    let (mock, server, id) = asking_an_allowing_service().await;
    // A user's JWT (no token_type, no task_id) presented where a guest token goes.
    let user = server.token(Some(3), 1);

    for (name, value) in [
        ("X-Guest-Authorization", user.clone()),
        ("Cookie", format!("guest-token={user}")),
    ] {
        answer_with(&mock, 204).await;
        let response = get_with(&server, &format!("/files/{id}"), &[(name, &value)]).await;

        assert_eq!(response.status(), 200, "{name}");
        let check = assert_one_check_of(&mock, &id).await;
        assert_eq!(
            header_of(&check.headers, "authorization"),
            Some(format!("Bearer {user}")),
            "{name}: the form follows the token's kind"
        );
        assert_eq!(
            header_of(&check.headers, "x-guest-authorization"),
            None,
            "{name}"
        );
    }
}

#[tokio::test]
async fn permission_check_never_receives_a_guest_jwt_as_bearer() {
    let (mock, server, id) = asking_an_allowing_service().await;
    let guest = server.guest_token(Some(3), 1, 21);

    for (name, value) in [
        ("Authorization", format!("Bearer {guest}")),
        ("Cookie", format!("token={guest}")),
    ] {
        let response = get_with(&server, &format!("/files/{id}"), &[(name, &value)]).await;

        expect_error(response, 401, "UNAUTHENTICATED").await;
    }
    assert!(
        received(&mock).await.is_empty(),
        "the permission service was asked with a guest token as a user credential"
    );
}

#[tokio::test]
async fn permission_check_guards_info() {
    let (mock, server, id) = asking_an_allowing_service().await;
    let reader = server.bearer(Some(2), 1);
    let path = format!("/files/{id}/info");

    let allowed = get_with(&server, &path, &[("Authorization", &reader)]).await;
    let info = json_with_status(allowed, 200).await;
    assert_eq!(info["file_id"], id.as_str());
    assert_one_check_of(&mock, &id).await;
    answer_with(&mock, 403).await;
    let denied = get_with(&server, &path, &[("Authorization", &reader)]).await;

    expect_error(denied, 403, "FILE_ACCESS_DENIED").await;
    assert_one_check_of(&mock, &id).await;
}

#[tokio::test]
async fn permission_check_guards_signed_url_creation() {
    let (mock, server, id) = asking_an_allowing_service().await;
    let reader = server.bearer(Some(2), 1);

    let allowed = create_signed_url(&server, &reader, &id, None).await;
    let body = json_with_status(allowed, 200).await;
    assert!(body["url"].is_string(), "{body}");
    assert_one_check_of(&mock, &id).await;
    answer_with(&mock, 403).await;
    let denied = create_signed_url(&server, &reader, &id, None).await;

    expect_error(denied, 403, "FILE_ACCESS_DENIED").await;
    assert_one_check_of(&mock, &id).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn permission_check_forwards_opaque_cookie_token_as_bearer() {
    let url = redis_url();
    let prefix = unique_prefix();
    let mock = permission_service(204).await;
    // A process: the test reads its log.
    let server = TestServer::process_with(&[
        (
            "PERMISSION_CHECK_URL",
            &format!("{}{CHECK_PATH}", mock.uri()),
        ),
        ("REDIS_URL", &url),
        ("REDIS_KEY_PREFIX", &prefix),
    ])
    .await;
    let id = upload_by_owner(&server).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, USER_P5).await;

    let response = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Cookie", &format!("file_service_auth={token}"))],
    )
    .await;

    assert_eq!(response.status(), 200);
    let check = assert_one_check_of(&mock, &id).await;
    assert_eq!(
        header_of(&check.headers, "authorization"),
        Some(format!("Bearer {token}"))
    );
    assert_eq!(
        header_of(&check.headers, "cookie"),
        None,
        "the credential goes in its header form"
    );
    assert_log_free_of(
        &server,
        &[
            ("AUTH_SECRET_KEY", &server.secret),
            ("the opaque token", &token),
        ],
    );
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn permission_check_forwards_public_cookie_token_as_x_public_authorization() {
    let url = redis_url();
    let prefix = unique_prefix();
    let mock = permission_service(204).await;
    // A process: the test reads its log.
    let server = TestServer::process_with(&[
        (
            "PERMISSION_CHECK_URL",
            &format!("{}{CHECK_PATH}", mock.uri()),
        ),
        ("REDIS_URL", &url),
        ("REDIS_KEY_PREFIX", &prefix),
    ])
    .await;
    let id = upload_by_owner(&server).await;
    redis_set(
        &url,
        &format!("{prefix}pubtok06"),
        PUBLIC_P5,
        Duration::from_secs(300),
    )
    .await;

    let response = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Cookie", "public-token=pubtok06")],
    )
    .await;

    assert_eq!(response.status(), 200);
    let check = assert_one_check_of(&mock, &id).await;
    assert_eq!(
        header_of(&check.headers, "x-public-authorization"),
        Some("Token pubtok06".to_owned())
    );
    assert_eq!(
        header_of(&check.headers, "cookie"),
        None,
        "the credential goes in its header form"
    );
    assert_log_free_of(&server, &[("the public token", "pubtok06")]);
}

#[tokio::test]
async fn permission_check_guards_head() {
    let (mock, server, id) = asking_an_allowing_service().await;
    let reader = server.bearer(Some(2), 1);
    let path = format!("/files/{id}");

    let allowed = send(&server, Method::HEAD, &path, &[("Authorization", &reader)]).await;
    assert_eq!(allowed.status(), 200);
    assert_one_check_of(&mock, &id).await;
    answer_with(&mock, 403).await;
    let denied = send(&server, Method::HEAD, &path, &[("Authorization", &reader)]).await;

    assert_eq!(denied.status(), 403);
    assert_one_check_of(&mock, &id).await;
}

#[tokio::test]
async fn permission_check_is_not_made_for_signed_url_downloads() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .expect(0)
        .mount(&mock)
        .await;
    let server = spawn_asking(&format!("{}{CHECK_PATH}", mock.uri()), &[]).await;
    let id = upload_by_owner(&server).await;
    let url = signed_url(&server, &server.bearer(Some(1), 1), &id).await;

    let download = client().get(&url).send().await.unwrap();
    let head = client().head(&url).send().await.unwrap();

    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"the plan");
    assert_eq!(head.status(), 200);
    mock.verify().await;
}

#[tokio::test]
async fn permission_check_never_lets_another_user_delete() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&mock)
        .await;
    let server = spawn_asking(&format!("{}{CHECK_PATH}", mock.uri()), &[]).await;
    let id = upload_by_owner(&server).await;
    let path = format!("/files/{id}");

    let deleted = send(
        &server,
        Method::DELETE,
        &path,
        &[("Authorization", &server.bearer(Some(2), 1))],
    )
    .await;

    expect_error(deleted, 403, "FILE_ACCESS_DENIED").await;
    let owner = get_with(
        &server,
        &path,
        &[("Authorization", &server.bearer(Some(1), 1))],
    )
    .await;
    assert_eq!(owner.status(), 200, "the file is still there");
    mock.verify().await;
}
