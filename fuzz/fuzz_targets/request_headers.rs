//! The request headers the HTTP layer reads itself: credentials (`Authorization`, the guest and
//! public headers, cookies), `If-None-Match`, `If-Range` and the proxy's `X-Real-IP` (the client
//! address rate limits count by); and the headers it writes from client
//! text (`Content-Disposition` from a file name), which must always be valid header values.
//!
//! Input: `name: value` lines; lines that are not a valid header are skipped.

#![no_main]

use axum::http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use stowage_application::use_cases::CredentialSource;
use stowage_domain::Filename;
use stowage_presentation::extract::presented_credentials;
use stowage_presentation::fuzzing::client_address_of;
use stowage_presentation::headers::{
    content_disposition, encode_uri_component, etag_of, if_none_match_matches, if_range_matches,
};

fuzz_target!(|data: &[u8]| {
    let headers = stowage_fuzz::headers_of(data);

    let found = presented_credentials(&headers);
    let at_most = |source, n| {
        let count = found.iter().filter(|c| c.source == source).count();
        assert!(count <= n, "{count} credentials from {source:?}");
    };
    at_most(CredentialSource::Bearer, 1);
    at_most(CredentialSource::GuestHeader, 1);
    at_most(CredentialSource::PublicHeader, 1);
    at_most(CredentialSource::UserCookie, 2);
    at_most(CredentialSource::GuestCookie, 1);
    at_most(CredentialSource::PublicCookie, 1);
    for credential in &found {
        assert!(!credential.token.is_empty());
        assert_eq!(credential.token.trim(), credential.token);
    }

    let etag = etag_of("0123abcd");
    let last_modified = Some("Tue, 14 Nov 2023 22:13:20 GMT");
    for value in headers.values() {
        let Ok(text) = value.to_str() else {
            continue;
        };
        let _ = if_none_match_matches(text, &etag);
        if if_range_matches(text, &etag, last_modified) {
            let text = text.trim();
            assert!(text == etag || Some(text) == last_modified, "{text:?}");
        }
    }

    // The address is an IP address: the peer's, unless a trusted proxy names another.
    let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 4711));
    let mut extensions = axum::http::Extensions::new();
    extensions.insert(axum::extract::ConnectInfo(peer));
    assert_eq!(client_address_of(&headers, &extensions, false), "192.0.2.1");
    let proxied = client_address_of(&headers, &extensions, true);
    assert!(proxied.parse::<std::net::IpAddr>().is_ok(), "{proxied:?}");
    if proxied != "192.0.2.1" {
        let real_ip = headers.get("x-real-ip").and_then(|v| v.to_str().ok());
        assert_eq!(real_ip.map(str::trim), Some(proxied.as_str()));
    }

    // Any name a client uploads under turns into valid header text.
    let raw = String::from_utf8_lossy(data);
    let name = Filename::sanitize(&raw);
    for inline in [false, true] {
        let disposition = content_disposition(inline, &name);
        assert!(
            HeaderValue::from_str(&disposition).is_ok(),
            "{disposition:?}"
        );
    }
    let encoded = encode_uri_component(&raw);
    assert!(encoded.bytes().all(|b| b.is_ascii_graphic()), "{encoded:?}");
});
