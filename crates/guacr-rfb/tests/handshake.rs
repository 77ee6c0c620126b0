//! Byte-exact handshake tests for every protocol version and security type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use guacr_rfb::{
    Event, PixelFormat, PixelFormatRequest, ProtocolVersion, RfbClient, RfbConfig, RfbError,
    Security, vnc_auth_response,
};

/// Challenge 00 01 .. 0f encrypted under "password": computed independently
/// with OpenSSL (`openssl enc -des-ecb -K 0e86ceceeef64e26 -nopad -provider
/// legacy -provider default`, the key being "password" with every byte
/// bit-reversed).
const CHALLENGE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const RESPONSE_PASSWORD: &str = "b866924125c8eebb9debc1db61c538e2";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cfg_pw(pw: &str) -> RfbConfig {
    RfbConfig {
        password: Some(pw.into()),
        ..RfbConfig::default()
    }
}

/// Expected client output after ServerInit with the default config:
/// SetPixelFormat(RGB888) + SetEncodings(default list) + FBUR(non-incremental).
fn expected_init_output(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0];
    v.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    let codes: [i32; 13] = [1, 7, 16, 15, 5, 2, 0, -239, -240, -223, -308, -224, -307];
    v.extend_from_slice(&[2, 0, 0, codes.len() as u8]);
    for c in codes {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v.extend_from_slice(&[3, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v
}

#[test]
fn des_response_matches_openssl_vector() {
    assert_eq!(
        hex(&vnc_auth_response(b"password", &CHALLENGE)),
        RESPONSE_PASSWORD
    );
    // Only the first 8 bytes of the password count.
    assert_eq!(
        vnc_auth_response(b"password-and-more", &CHALLENGE),
        vnc_auth_response(b"password", &CHALLENGE)
    );
    assert_ne!(
        vnc_auth_response(b"passwore", &CHALLENGE),
        vnc_auth_response(b"password", &CHALLENGE)
    );
}

#[test]
fn v38_none_byte_exact() {
    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.008\n").unwrap();
    assert_eq!(c.take_output(), b"RFB 003.008\n");
    c.feed(&[2, 1, 2]).unwrap(); // offers None, VncAuth: None is first
    assert_eq!(c.take_output(), [1]);
    c.feed(&[0, 0, 0, 0]).unwrap();
    assert_eq!(c.take_output(), [1], "ClientInit shared=1");
    c.feed(&server_init(800, 600, PixelFormat::RGB888, "desk"))
        .unwrap();
    let ev = drain(&mut c);
    assert_eq!(
        ev,
        vec![Event::Connected {
            width: 800,
            height: 600,
            name: "desk".into(),
            pixel_format: PixelFormat::RGB888
        }]
    );
    assert_eq!(c.take_output(), expected_init_output(800, 600));
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::V3_8));
    assert_eq!(c.security(), Some(Security::None));
    assert!(c.is_connected());
}

#[test]
fn v37_none_has_no_security_result() {
    let mut c = RfbClient::new(RfbConfig {
        shared: false,
        ..RfbConfig::default()
    });
    c.feed(b"RFB 003.007\n").unwrap();
    assert_eq!(c.take_output(), b"RFB 003.007\n");
    c.feed(&[1, 1]).unwrap();
    assert_eq!(
        c.take_output(),
        [1, 0],
        "type None then ClientInit shared=0"
    );
    c.feed(&server_init(64, 32, PixelFormat::RGB888, ""))
        .unwrap();
    assert!(matches!(
        drain(&mut c)[..],
        [Event::Connected {
            width: 64,
            height: 32,
            ..
        }]
    ));
}

#[test]
fn v33_none_and_vnc_auth() {
    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.003\n").unwrap();
    assert_eq!(c.take_output(), b"RFB 003.003\n");
    c.feed(&[0, 0, 0, 1]).unwrap();
    assert_eq!(c.take_output(), [1]);
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::V3_3));

    let mut c = RfbClient::new(cfg_pw("password"));
    c.feed(b"RFB 003.003\n").unwrap();
    c.take_output();
    c.feed(&[0, 0, 0, 2]).unwrap();
    assert!(c.take_output().is_empty());
    c.feed(&CHALLENGE).unwrap();
    assert_eq!(hex(&c.take_output()), RESPONSE_PASSWORD);
    c.feed(&[0, 0, 0, 0]).unwrap();
    assert_eq!(c.take_output(), [1]);
    c.feed(&server_init(10, 10, PixelFormat::RGB888, "x"))
        .unwrap();
    assert!(c.is_connected());
}

#[test]
fn v33_failure_with_reason_is_refused() {
    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.003\n").unwrap();
    let err = c
        .feed(&Msg::new().u32(0).u32(7).bytes(b"go away").0)
        .unwrap_err();
    assert_eq!(err, RfbError::ConnectionRefused("go away".into()));
    assert_eq!(c.feed(&[0]), Err(RfbError::Closed));
}

#[test]
fn v38_vnc_auth_ok_and_wrong_password() {
    let mut c = RfbClient::new(cfg_pw("password"));
    c.feed(b"RFB 003.008\n").unwrap();
    c.take_output();
    c.feed(&[1, 2]).unwrap();
    assert_eq!(c.take_output(), [2]);
    c.feed(&CHALLENGE).unwrap();
    assert_eq!(hex(&c.take_output()), RESPONSE_PASSWORD);
    c.feed(&[0, 0, 0, 0]).unwrap();
    assert_eq!(c.take_output(), [1]);

    let mut c = RfbClient::new(cfg_pw("wrong"));
    c.feed(b"RFB 003.008\n").unwrap();
    c.feed(&[1, 2]).unwrap();
    c.feed(&CHALLENGE).unwrap();
    c.take_output();
    c.feed(&Msg::new().u32(1).u32(21).bytes(b"Authentication failed").0)
        .unwrap();
    assert_eq!(
        drain(&mut c),
        vec![Event::AuthFailed {
            reason: "Authentication failed".into()
        }]
    );
    assert!(c.is_closed());
    assert_eq!(c.feed(&[0]), Err(RfbError::Closed));
}

#[test]
fn v37_auth_failure_has_generic_reason() {
    let mut c = RfbClient::new(cfg_pw("x"));
    c.feed(b"RFB 003.007\n").unwrap();
    c.feed(&[1, 2]).unwrap();
    c.feed(&CHALLENGE).unwrap();
    c.feed(&[0, 0, 0, 1]).unwrap();
    assert!(matches!(&drain(&mut c)[..], [Event::AuthFailed { .. }]));
}

#[test]
fn eof_after_credentials_is_auth_failure() {
    let mut c = RfbClient::new(cfg_pw("x"));
    c.feed(b"RFB 003.003\n").unwrap();
    c.feed(&[0, 0, 0, 2]).unwrap();
    c.feed(&CHALLENGE).unwrap();
    assert!(matches!(c.eof(), RfbError::AuthFailed(_)));

    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.0").unwrap();
    assert!(matches!(c.eof(), RfbError::UnexpectedEof(_)));

    let mut c = default_client(10, 10);
    assert_eq!(c.eof(), RfbError::Closed);
    let mut c = default_client(10, 10);
    c.feed(&[0, 0, 0]).unwrap();
    assert!(matches!(c.eof(), RfbError::UnexpectedEof(_)));
}

#[test]
fn missing_password_asks_for_credentials() {
    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.008\n").unwrap();
    c.feed(&[1, 2]).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![Event::CredentialsRequired {
            username: false,
            password: true
        }]
    );
    // The challenge arrives while waiting: it is kept.
    c.feed(&CHALLENGE).unwrap();
    c.take_output();
    c.provide_credentials(None, Some("password".into()))
        .unwrap();
    assert_eq!(hex(&c.take_output()), RESPONSE_PASSWORD);
    assert_eq!(
        c.provide_credentials(None, None),
        Err(RfbError::InvalidState("no credentials requested"))
    );
}

#[test]
fn version_mapping() {
    for (server, reply, v) in [
        (b"RFB 003.889\n", b"RFB 003.008\n", ProtocolVersion::V3_8),
        (b"RFB 004.001\n", b"RFB 003.008\n", ProtocolVersion::V3_8),
        (b"RFB 003.005\n", b"RFB 003.003\n", ProtocolVersion::V3_3),
        (b"RFB 003.006\n", b"RFB 003.003\n", ProtocolVersion::V3_3),
    ] {
        let mut c = RfbClient::new(RfbConfig::default());
        c.feed(server).unwrap();
        assert_eq!(&c.take_output(), reply);
        assert_eq!(c.protocol_version(), Some(v));
    }
    for bad in [&b"RFB 002.000\n"[..], b"HTTP/1.1 200", b"RFB 003.00x\n"] {
        let mut c = RfbClient::new(RfbConfig::default());
        assert!(matches!(c.feed(bad), Err(RfbError::UnsupportedVersion(_))));
    }
}

#[test]
fn refused_and_unsupported_security() {
    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.008\n").unwrap();
    let e = c
        .feed(&Msg::new().u8(0).u32(12).bytes(b"Too many tri").0)
        .unwrap_err();
    assert_eq!(e, RfbError::ConnectionRefused("Too many tri".into()));

    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.008\n").unwrap();
    let e = c.feed(&[2, 30, 35]).unwrap_err();
    assert!(
        matches!(e, RfbError::UnsupportedSecurity(ref s) if s.contains("Apple")),
        "{e}"
    );
}

fn vencrypt_to_subtypes(cfg: RfbConfig, subtypes: &[u32]) -> RfbClient {
    let mut c = RfbClient::new(cfg);
    c.feed(b"RFB 003.008\n").unwrap();
    c.take_output();
    c.feed(&[1, 19]).unwrap();
    assert_eq!(c.take_output(), [19]);
    c.feed(&[0, 2]).unwrap();
    assert_eq!(c.take_output(), [0, 2]);
    let mut m = Msg::new().u8(0).u8(subtypes.len() as u8);
    for s in subtypes {
        m = m.u32(*s);
    }
    c.feed(&m.0).unwrap();
    c
}

#[test]
fn vencrypt_x509vnc() {
    let mut c = vencrypt_to_subtypes(cfg_pw("password"), &[261, 258]);
    assert_eq!(c.take_output(), 261u32.to_be_bytes());
    c.feed(&[1]).unwrap();
    assert_eq!(drain(&mut c), vec![Event::StartTls { verify_x509: true }]);
    c.tls_established().unwrap();
    c.feed(&CHALLENGE).unwrap();
    assert_eq!(hex(&c.take_output()), RESPONSE_PASSWORD);
    c.feed(&[0, 0, 0, 0]).unwrap();
    assert_eq!(c.take_output(), [1]);
    assert_eq!(c.security(), Some(Security::VeNCrypt(261)));
}

#[test]
fn vencrypt_prefers_x509_subtypes() {
    let mut c = vencrypt_to_subtypes(cfg_pw("pw"), &[258, 256, 262, 261]);
    assert_eq!(c.take_output(), 262u32.to_be_bytes());
    let mut c = vencrypt_to_subtypes(cfg_pw("pw"), &[258, 2, 257]);
    assert_eq!(c.take_output(), 258u32.to_be_bytes());
}

#[test]
fn vencrypt_tlsnone_and_tlsplain() {
    let mut c = vencrypt_to_subtypes(RfbConfig::default(), &[257]);
    assert_eq!(c.take_output(), 257u32.to_be_bytes());
    c.feed(&[1]).unwrap();
    assert_eq!(drain(&mut c), vec![Event::StartTls { verify_x509: false }]);
    c.tls_established().unwrap();
    c.feed(&[0, 0, 0, 0]).unwrap();
    assert_eq!(c.take_output(), [1]);

    let cfg = RfbConfig {
        username: Some("bob".into()),
        password: Some("secret".into()),
        ..RfbConfig::default()
    };
    let mut c = vencrypt_to_subtypes(cfg, &[259]);
    c.take_output();
    c.feed(&[1]).unwrap();
    drain(&mut c);
    c.tls_established().unwrap();
    assert_eq!(
        c.take_output(),
        Msg::new().u32(3).u32(6).bytes(b"bobsecret").0
    );
}

#[test]
fn vencrypt_plain_needs_opt_in_and_credentials() {
    let e = vencrypt_to_subtypes_err(RfbConfig::default(), &[256]);
    assert!(matches!(e, RfbError::UnsupportedSecurity(_)));
    let mut c = vencrypt_to_subtypes(
        RfbConfig {
            allow_plain_without_tls: true,
            ..RfbConfig::default()
        },
        &[256],
    );
    assert_eq!(c.take_output(), 256u32.to_be_bytes());
    assert_eq!(
        drain(&mut c),
        vec![Event::CredentialsRequired {
            username: true,
            password: true
        }]
    );
    c.provide_credentials(Some("u".into()), Some("p".into()))
        .unwrap();
    assert_eq!(c.take_output(), Msg::new().u32(1).u32(1).bytes(b"up").0);
}

fn vencrypt_to_subtypes_err(cfg: RfbConfig, subtypes: &[u32]) -> RfbError {
    let mut c = RfbClient::new(cfg);
    c.feed(b"RFB 003.008\n").unwrap();
    c.feed(&[1, 19]).unwrap();
    c.feed(&[0, 2]).unwrap();
    let mut m = Msg::new().u8(0).u8(subtypes.len() as u8);
    for s in subtypes {
        m = m.u32(*s);
    }
    c.feed(&m.0).unwrap_err()
}

#[test]
fn tls_refused_and_data_before_tls() {
    let mut c = vencrypt_to_subtypes(RfbConfig::default(), &[257]);
    assert!(matches!(c.feed(&[0]), Err(RfbError::Protocol(_))));
    let mut c = vencrypt_to_subtypes(RfbConfig::default(), &[257]);
    assert!(matches!(c.feed(&[1, 0x16]), Err(RfbError::Protocol(_))));
    let mut c = RfbClient::new(RfbConfig::default());
    assert!(c.tls_established().is_err());
}

#[test]
fn server_init_size_limits() {
    for (w, h) in [(0u16, 600u16), (800, 0), (16385, 10), (10, 65535)] {
        let mut c = RfbClient::new(RfbConfig::default());
        c.feed(b"RFB 003.008\n").unwrap();
        c.feed(&[1, 1, 0, 0, 0, 0]).unwrap();
        let e = c
            .feed(&server_init(w, h, PixelFormat::RGB888, ""))
            .unwrap_err();
        assert_eq!(
            e,
            RfbError::InvalidDesktopSize {
                width: u32::from(w),
                height: u32::from(h)
            }
        );
    }
    // A huge name is refused without being buffered to the end.
    let mut c = RfbClient::new(RfbConfig::default());
    c.feed(b"RFB 003.008\n").unwrap();
    c.feed(&[1, 1, 0, 0, 0, 0]).unwrap();
    let mut si = server_init(10, 10, PixelFormat::RGB888, "");
    si.truncate(20);
    si.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(c.feed(&si), Err(RfbError::TooLarge(_))));
}

#[test]
fn server_native_format_sends_no_set_pixel_format() {
    let cfg = RfbConfig {
        pixel_format: PixelFormatRequest::ServerNative,
        jpeg_quality: Some(7),
        compress_level: Some(2),
        encodings: vec![guacr_rfb::Encoding::Raw],
        ..RfbConfig::default()
    };
    let mut c = RfbClient::new(cfg);
    c.feed(b"RFB 003.008\n").unwrap();
    c.feed(&[1, 1, 0, 0, 0, 0]).unwrap();
    c.take_output();
    c.feed(&server_init(10, 10, PixelFormat::RGB565, ""))
        .unwrap();
    let mut want = Msg::new().u8(2).u8(0).u16(3).i32(0).i32(-25).i32(-254).0;
    want.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 10, 0, 10]);
    assert_eq!(c.take_output(), want);
    assert_eq!(c.pixel_format(), PixelFormat::RGB565);
}

#[test]
fn client_messages_byte_exact() {
    let mut c = default_client(100, 50);
    c.key(0xff0d, true);
    c.pointer(500, 20, 0b101);
    c.cut_text(b"h\xe9");
    c.request_update(true);
    let mut want = vec![4, 1, 0, 0, 0, 0, 0xff, 0x0d];
    want.extend_from_slice(&[5, 5, 0, 99, 0, 20]);
    want.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 2, b'h', 0xe9]);
    want.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 100, 0, 50]);
    assert_eq!(c.take_output(), want);
    assert!(!c.can_resize());
    assert!(c.set_desktop_size(10, 10).is_err());
    // Before connecting, commands are ignored.
    let mut c = RfbClient::new(RfbConfig::default());
    c.key(1, true);
    c.pointer(1, 1, 1);
    assert!(!c.has_output());
}

#[test]
fn config_debug_hides_password() {
    let s = format!("{:?}", cfg_pw("hunter2"));
    assert!(!s.contains("hunter2"), "{s}");
}
