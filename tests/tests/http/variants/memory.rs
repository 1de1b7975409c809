//! Decompression bombs cost the server no memory: their variants are refused from the header,
//! before anything the size of their pixels is allocated.

use stowage_tests::TestServer;
use stowage_tests::images::{gif_bomb, jpeg, jpeg_bomb, png_bomb};

use super::{Image, assert_error, get_as_owner, image_of, upload};

/// A figure of `/proc/PID/status` in KiB: `VmRSS` now, or `VmHWM`, the peak so far.
fn proc_kib(server: &TestServer, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

#[tokio::test]
async fn variants_of_bombs_keep_the_server_memory_flat() {
    let server = TestServer::process_with(&[]).await;
    let bombs: Vec<Image> = vec![
        upload(&server, "bomb.gif", &gif_bomb()).await,
        upload(&server, "bomb.jpg", &jpeg_bomb()).await,
        upload(&server, "bomb.png", &png_bomb()).await,
    ];
    let photo = upload(&server, "photo.jpg", &jpeg(256, 256, 90)).await;
    let queries = [
        "w=100",
        "variant=large",
        "w=2500&h=2500&fit=fill&format=webp",
    ];
    // Warm up: the codecs and the paths of a refusal have run once.
    image_of(&get_as_owner(&server, &photo, "w=100", &[]).await, "jpeg");
    for bomb in &bombs {
        assert_error(
            &get_as_owner(&server, bomb, "w=10", &[]).await,
            422,
            "IMAGE_TOO_LARGE",
        );
    }
    let (rss, peak) = (server.rss_kib(), proc_kib(&server, "VmHWM"));

    for _ in 0..10 {
        for bomb in &bombs {
            for query in queries {
                let got = get_as_owner(&server, bomb, query, &[]).await;
                assert_error(&got, 422, "IMAGE_TOO_LARGE");
            }
        }
    }

    let (rss_after, peak_after) = (server.rss_kib(), proc_kib(&server, "VmHWM"));
    let limit = 30 * 1024;
    assert!(
        rss_after < rss + limit,
        "RSS grew from {rss} KiB to {rss_after} KiB"
    );
    assert!(
        peak_after < peak + limit,
        "peak RSS grew from {peak} KiB to {peak_after} KiB"
    );
}
