//! Starting a direct upload: limits, policies, presigned requests.

use super::*;

#[tokio::test]
async fn a_size_over_the_limit_is_refused_before_anything_is_presigned() {
    let mut mocks = Mocks::new();
    mocks.store.expect_presign_put().never();
    mocks.uploads.expect_insert().never();

    let err = mocks.start().execute(start_request(101)).await.unwrap_err();

    assert!(matches!(err, Error::TooLarge { limit: 100 }), "{err:?}");
}

#[tokio::test]
async fn a_policy_lowers_the_limit_and_an_unknown_one_is_invalid() {
    let mut over = start_request(5 * 1024 * 1024 + 1);
    over.policy = Some("avatar".into());
    let start = StartDirectUpload::new(Mocks::new().ports(), u64::MAX, policies());
    assert!(matches!(
        start.execute(over).await,
        Err(Error::TooLarge { limit }) if limit == 5 * 1024 * 1024
    ));
    let mut unknown = start_request(1);
    unknown.policy = Some("nope".into());
    assert!(matches!(
        Mocks::new().start().execute(unknown).await,
        Err(Error::Validation(_))
    ));
}

#[tokio::test]
async fn a_start_presigns_one_exact_put_with_the_checksum_and_records_the_upload() {
    let mut mocks = Mocks::new();
    mocks
        .store
        .expect_presign_put()
        .withf(|_, _, size, ty, sha, lifetime| {
            *size == 4 && ty == "image/png" && sha.is_some() && *lifetime == Duration::from_secs(60)
        })
        .times(1)
        .returning(|_, _, _, _, _, _| Ok(presigned("http://s3/put")));
    let recorded = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&recorded);
    mocks.uploads.expect_insert().times(1).returning(move |u| {
        *seen.lock().unwrap() = Some(u.clone());
        Ok(())
    });

    let ticket = mocks.start().execute(start_request(4)).await.unwrap();

    assert_eq!(ticket.target, DirectTarget::Put(presigned("http://s3/put")));
    let row = recorded.lock().unwrap().clone().unwrap();
    assert_eq!(row.id, ticket.id);
    assert_eq!(row.filename.as_str(), "a.png");
    assert_eq!(row.multipart, None);
    assert_eq!(
        ticket.expires_at,
        OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60)
    );
}

#[tokio::test]
async fn a_multipart_start_presigns_one_url_per_part() {
    let mut mocks = Mocks::new();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let signed = Arc::clone(&sizes);
    mocks
        .store
        .expect_start_multipart()
        .times(1)
        .returning(|_, _| Ok("mp-1".into()));
    mocks
        .uploads
        .expect_insert()
        .withf(|u| u.multipart.as_deref() == Some("mp-1"))
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .store
        .expect_presign_part()
        .times(3)
        .returning(move |_, _, n, size, _| {
            signed.lock().unwrap().push(size);
            Ok(presigned(&format!("http://s3/part/{n}")))
        });
    let mut request = start_request(11);
    request.multipart = true;

    let ticket = mocks.start().execute(request).await.unwrap();

    let DirectTarget::Multipart { part_size, parts } = ticket.target else {
        panic!("not multipart");
    };
    assert_eq!(part_size, 5);
    assert_eq!(parts.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2, 3]);
    // Each part URL signs its exact length: the last one has the rest.
    assert_eq!(*sizes.lock().unwrap(), [5, 5, 1]);
}

#[tokio::test]
async fn a_lifetime_outside_one_second_to_a_day_is_invalid() {
    for secs in [0, 86_401] {
        let mut request = start_request(4);
        request.lifetime = Duration::from_secs(secs);
        let mut mocks = Mocks::new();
        mocks.store.expect_presign_put().never();
        assert!(matches!(
            mocks.start().execute(request).await,
            Err(Error::Validation(_))
        ));
    }
}

#[tokio::test]
async fn a_file_too_big_for_one_s3_put_goes_multipart() {
    let mut mocks = Mocks::new();
    mocks.store.checkpoint();
    // A part size whose thousand parts exceed S3's 5 GiB single `PUT`.
    mocks.store.expect_part_size().return_const(16u64 << 20);
    mocks.store.expect_presign_put().never();
    mocks
        .store
        .expect_start_multipart()
        .times(1)
        .returning(|_, _| Ok("mp".into()));
    mocks.uploads.expect_insert().returning(|_| Ok(()));
    mocks
        .store
        .expect_presign_part()
        .returning(|_, _, _, _, _| Ok(presigned("http://s3/part")));
    let start = StartDirectUpload::new(mocks.ports(), u64::MAX, policies());

    let ticket = start.execute(start_request((5 << 30) + 1)).await.unwrap();

    assert!(matches!(ticket.target, DirectTarget::Multipart { .. }));
}

#[tokio::test]
async fn a_policy_that_strips_metadata_takes_a_single_put_only() {
    let policies = HashMap::from([("stripped".to_owned(), UploadPolicy::avatar())]);
    let mut request = start_request(11);
    request.policy = Some("stripped".into());
    request.multipart = true;
    let mut mocks = Mocks::new();
    mocks.store.expect_start_multipart().never();
    mocks.uploads.expect_insert().never();
    let start = StartDirectUpload::new(mocks.ports(), 100, policies);

    let err = start.execute(request).await.unwrap_err();

    assert!(
        matches!(&err, Error::Validation(reason) if reason.contains("multipart: false")),
        "{err:?}"
    );
}
