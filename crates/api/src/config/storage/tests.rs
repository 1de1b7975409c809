use std::collections::HashMap;
use std::time::Duration;

use secrecy::ExposeSecret;
use stowage_infrastructure::{CloudinarySettings, SignatureAlgorithm};

use crate::config::{Config, ConfigError, StorageConfig};

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn storage(pairs: &[(&str, &str)]) -> Result<StorageConfig, ConfigError> {
    Config::from_map(&map(pairs)).map(|c| c.storage)
}

fn cloudinary(extra: &[(&str, &str)]) -> Result<CloudinarySettings, ConfigError> {
    let mut pairs = vec![
        ("STORAGE_BACKEND", "cloudinary"),
        (
            "CLOUDINARY_URL",
            "cloudinary://123456:cl0udsecret@demo-cloud",
        ),
    ];
    pairs.extend_from_slice(extra);
    match storage(&pairs)? {
        StorageConfig::Cloudinary(settings) => Ok(settings),
        other => panic!("cloudinary expected, got {other:?}"),
    }
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    storage(pairs).unwrap_err().to_string()
}

#[test]
fn memory_backend_defaults_to_256_mib() {
    let c = storage(&[("STORAGE_BACKEND", "memory")]).unwrap();

    assert!(
        matches!(
            c,
            StorageConfig::Memory {
                capacity_bytes: 268_435_456
            }
        ),
        "{c:?}"
    );
}

#[test]
fn memory_backend_takes_its_capacity() {
    let c = storage(&[
        ("STORAGE_BACKEND", "Memory"),
        ("MEMORY_STORE_BYTES", "100000"),
    ])
    .unwrap();

    assert!(
        matches!(
            c,
            StorageConfig::Memory {
                capacity_bytes: 100_000
            }
        ),
        "{c:?}"
    );
}

#[test]
fn memory_capacity_must_be_a_positive_number() {
    for bad in ["0", "-1", "lots", "1.5"] {
        let err = error_of(&[("STORAGE_BACKEND", "memory"), ("MEMORY_STORE_BYTES", bad)]);

        assert!(
            err.starts_with("MEMORY_STORE_BYTES is invalid"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn an_unknown_backend_lists_the_supported_ones() {
    let err = error_of(&[("STORAGE_BACKEND", "tape")]);

    assert_eq!(
        err,
        "STORAGE_BACKEND is invalid: 'tape' is not a supported backend \
         (fs, s3, memory or cloudinary)"
    );
}

#[test]
fn cloudinary_url_gives_cloud_key_and_secret() {
    let c = cloudinary(&[(
        "CLOUDINARY_URL",
        "cloudinary://12%3A34:s%40cr%2Fet%3A@my_cloud",
    )])
    .unwrap();

    assert_eq!(c.cloud_name, "my_cloud");
    assert_eq!(c.api_key, "12:34");
    assert_eq!(c.api_secret.expose_secret(), "s@cr/et:");
}

#[test]
fn cloudinary_defaults() {
    let c = cloudinary(&[]).unwrap();

    assert_eq!(c.cloud_name, "demo-cloud");
    assert_eq!(c.api_key, "123456");
    assert_eq!(c.api_secret.expose_secret(), "cl0udsecret");
    assert_eq!(c.folder, "stowage");
    assert_eq!(c.api_url, "https://api.cloudinary.com");
    assert_eq!(c.delivery_url, "https://res.cloudinary.com");
    assert_eq!(c.chunk_size, 6_000_000);
    assert_eq!(c.buffer_bytes, 64 << 20);
    assert_eq!(c.buffer_wait, Duration::from_secs(10));
    assert_eq!(c.signature_algorithm, SignatureAlgorithm::Sha1);
    assert_eq!(c.connect_timeout, Duration::from_millis(5000));
    assert_eq!(c.timeout, Duration::from_millis(60_000));
    assert!(!format!("{c:?}").contains("cl0udsecret"));
}

#[test]
fn cloudinary_takes_its_other_settings() {
    let c = cloudinary(&[
        ("CLOUDINARY_FOLDER", "apps/stowage_1/files-2"),
        ("CLOUDINARY_API_URL", "http://127.0.0.1:9000/"),
        ("CLOUDINARY_DELIVERY_URL", "http://127.0.0.1:9001/cdn/"),
        ("CLOUDINARY_CHUNK_SIZE", "5000000"),
        ("CLOUDINARY_SIGNATURE_ALGORITHM", "SHA256"),
        ("CLOUDINARY_CONNECT_TIMEOUT_MS", "250"),
        ("CLOUDINARY_TIMEOUT_MS", "1500"),
    ])
    .unwrap();

    assert_eq!(c.folder, "apps/stowage_1/files-2");
    assert_eq!(c.api_url, "http://127.0.0.1:9000");
    assert_eq!(c.delivery_url, "http://127.0.0.1:9001/cdn");
    assert_eq!(c.chunk_size, 5_000_000);
    assert_eq!(c.signature_algorithm, SignatureAlgorithm::Sha256);
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.timeout, Duration::from_millis(1500));
}

#[test]
fn a_malformed_cloudinary_url_is_reported_without_its_secret() {
    for bad in [
        "https://123456:topsecretvalue@demo",
        "cloudinary://123456:topsecretvalue",
        "cloudinary://123456topsecretvalue@demo",
        "cloudinary://:topsecretvalue@demo",
        "cloudinary://123456:@demo",
        "cloudinary://123456:topsecretvalue@",
        "cloudinary://123456:topsecretvalue@demo/path",
        "cloudinary://123456:topsecretvalue@demo?secure=true",
        "cloudinary://123456:topsecretvalue%FF@demo",
    ] {
        let err = error_of(&[("STORAGE_BACKEND", "cloudinary"), ("CLOUDINARY_URL", bad)]);

        assert!(err.starts_with("CLOUDINARY_URL is invalid"), "{err}");
        assert!(err.contains("cloudinary://<api_key>:<api_secret>@<cloud_name>"));
        assert!(!err.contains("topsecretvalue"), "{err}");
        assert!(!err.contains("123456"), "{err}");
    }
}

#[test]
fn cloudinary_url_is_required() {
    let err = error_of(&[("STORAGE_BACKEND", "cloudinary")]);
    assert_eq!(
        err,
        "CLOUDINARY_URL is invalid: must be set when STORAGE_BACKEND=cloudinary"
    );

    let err = error_of(&[
        ("APP_ENV", "production"),
        ("AUTH_SECRET_KEY", "k"),
        ("DATABASE_URL", "postgres://db/x"),
        ("PUBLIC_URL", "https://files.example.com"),
        ("STORAGE_BACKEND", "cloudinary"),
    ]);
    assert_eq!(err, "CLOUDINARY_URL must be set when APP_ENV=production");
}

#[test]
fn invalid_cloudinary_settings_name_their_variable() {
    for (name, value) in [
        ("CLOUDINARY_FOLDER", "/stowage"),
        ("CLOUDINARY_FOLDER", "stowage/"),
        ("CLOUDINARY_FOLDER", "a//b"),
        ("CLOUDINARY_FOLDER", "with space"),
        ("CLOUDINARY_FOLDER", "dot.ted"),
        ("CLOUDINARY_FOLDER", &"x".repeat(101)),
        ("CLOUDINARY_API_URL", "ftp://api.example.com"),
        ("CLOUDINARY_DELIVERY_URL", "not a url"),
        ("CLOUDINARY_CHUNK_SIZE", "4999999"),
        ("CLOUDINARY_CHUNK_SIZE", "100000001"),
        ("CLOUDINARY_SIGNATURE_ALGORITHM", "md5"),
        ("CLOUDINARY_CONNECT_TIMEOUT_MS", "soon"),
        ("CLOUDINARY_TIMEOUT_MS", "-5"),
    ] {
        let err = cloudinary(&[(name, value)]).unwrap_err().to_string();

        assert!(
            err.starts_with(&format!("{name} is invalid")),
            "{value}: {err}"
        );
        assert!(!err.contains("cl0udsecret"), "{err}");
    }
}

#[test]
fn cloudinary_upload_buffers_hold_at_least_one_chunk() {
    let c = cloudinary(&[
        ("CLOUDINARY_CHUNK_SIZE", "8000000"),
        ("UPLOAD_BUFFER_BYTES", "8000000"),
    ])
    .unwrap();
    assert_eq!(c.buffer_bytes, 8_000_000);

    // Unset, the budget grows to one chunk: the largest chunk size stays valid alone.
    let largest = cloudinary(&[("CLOUDINARY_CHUNK_SIZE", "100000000")]).unwrap();
    assert_eq!(largest.buffer_bytes, 100_000_000);
    assert_eq!(
        cloudinary(&[]).unwrap().buffer_bytes,
        64 * 1024 * 1024,
        "the default"
    );

    for (chunk, budget) in [("8000000", "7999999"), ("100000000", "67108864")] {
        let pairs = [
            ("CLOUDINARY_CHUNK_SIZE", chunk),
            ("UPLOAD_BUFFER_BYTES", budget),
        ];
        let err = cloudinary(&pairs).unwrap_err().to_string();

        assert_eq!(
            err,
            format!(
                "UPLOAD_BUFFER_BYTES is invalid: must be at least CLOUDINARY_CHUNK_SIZE \
                 ({chunk}): one chunk is buffered at a time"
            )
        );
    }
}

#[test]
fn a_folder_of_100_characters_is_accepted() {
    let folder = "x".repeat(100);

    let c = cloudinary(&[("CLOUDINARY_FOLDER", &folder)]).unwrap();

    assert_eq!(c.folder, folder);
}
