//! GuacClient against an in-test fake server on a tokio duplex stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use guacr_protocol::handshake::{Event, ServerHandshake, write_error, write_ready};
use guacr_protocol::{Parser, Status};
use guacr_testkit::{
    ClientInfo, GuacClient, GuacError, Instruction, encode_png_rgba, img_instructions, keysym,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const T: Duration = Duration::from_secs(5);

struct FakeServer {
    s: DuplexStream,
    buf: Vec<u8>,
    parser: Parser,
}

impl FakeServer {
    fn new(s: DuplexStream) -> Self {
        FakeServer {
            s,
            buf: Vec::new(),
            parser: Parser::new(),
        }
    }

    /// The next client instruction; `None` on EOF.
    async fn read(&mut self) -> Option<Instruction> {
        loop {
            let r = self
                .parser
                .parse(&self.buf)
                .unwrap()
                .map(|(i, used)| (i.to_owned(), used));
            if let Some((ins, used)) = r {
                self.buf.drain(..used);
                return Some(ins);
            }
            let mut tmp = [0u8; 4096];
            let n = self.s.read(&mut tmp).await.unwrap();
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    async fn write(&mut self, wire: &[u8]) {
        self.s.write_all(wire).await.unwrap();
    }

    async fn send(&mut self, ins: &[Instruction]) {
        let mut out = Vec::new();
        for i in ins {
            i.encode(&mut out);
        }
        self.write(&out).await;
    }

    /// Runs the server side of the handshake; returns the handshake result
    /// (names/values) without sending `ready`.
    async fn accept(&mut self, names: &[&str]) -> guacr_protocol::handshake::Handshake {
        let mut hs = ServerHandshake::new();
        loop {
            let ins = self.read().await.unwrap();
            let wire = ins.to_wire();
            let mut p = Parser::new();
            let (r, _) = p.parse(wire.as_bytes()).unwrap().unwrap();
            match hs.receive(&r).unwrap() {
                Event::Selected(_) => {
                    let mut out = Vec::new();
                    hs.send_args(names, &mut out);
                    self.write(&out).await;
                }
                Event::Complete(h) => return *h,
                Event::Continue | Event::Ignored(_) => {}
            }
        }
    }
}

fn pair() -> (GuacClient<DuplexStream>, FakeServer) {
    let (a, b) = tokio::io::duplex(1 << 20);
    (GuacClient::new(a), FakeServer::new(b))
}

fn guac_err(e: &anyhow::Error) -> &GuacError {
    e.downcast_ref::<GuacError>()
        .unwrap_or_else(|| panic!("not a GuacError: {e:#}"))
}

#[tokio::test]
async fn handshake_fills_connect_values_by_name_and_returns_ready_id() {
    let (mut client, mut server) = pair();
    let srv = tokio::spawn(async move {
        let h = server
            .accept(&["hostname", "port", "password", "font-size"])
            .await;
        let mut out = Vec::new();
        write_ready(&mut out, "$4a1b-ready");
        server.write(&out).await;
        (h, server)
    });
    let info = ClientInfo {
        width: 800,
        height: 600,
        dpi: 120,
        image_mimetypes: vec!["image/png".into()],
        timezone: Some("Europe/Paris".into()),
        name: Some("alice".into()),
        ..Default::default()
    };
    let id = client
        .handshake(
            "ssh",
            &info,
            &[("port", "2222"), ("hostname", "example"), ("bogus", "x")],
        )
        .await
        .unwrap();
    assert_eq!(id, "$4a1b-ready");
    assert_eq!(client.connection_id(), Some("$4a1b-ready"));
    assert_eq!(
        client.args_names(),
        ["hostname", "port", "password", "font-size"]
    );
    assert_eq!(
        client.state().args_version.as_deref(),
        Some("VERSION_1_5_0")
    );
    let (h, _server) = srv.await.unwrap();
    assert_eq!(
        h.selection,
        guacr_protocol::handshake::Selection::Protocol("ssh".into())
    );
    assert_eq!(h.values, ["example", "2222", "", ""]);
    assert_eq!(
        (h.client.width, h.client.height, h.client.dpi),
        (800, 600, 120)
    );
    assert_eq!(h.client.name.as_deref(), Some("alice"));
    assert_eq!(h.client.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(h.client.image_mimetypes, ["image/png"]);
}

#[tokio::test]
async fn handshake_error_after_connect_carries_status() {
    let (mut client, mut server) = pair();
    let srv = tokio::spawn(async move {
        server.accept(&["password"]).await;
        let mut out = Vec::new();
        write_error(&mut out, "Permission denied.", Status::ClientUnauthorized);
        server.write(&out).await;
        server
    });
    let err = client
        .handshake("ssh", &ClientInfo::default(), &[("password", "wrong")])
        .await
        .unwrap_err();
    assert_eq!(
        guac_err(&err),
        &GuacError::Server {
            message: "Permission denied.".into(),
            status: 769
        }
    );
    assert_eq!(guac_err(&err).status(), Some(769));
    assert_eq!(client.state().last_error().unwrap().status, 769);
    drop(srv.await.unwrap());
}

#[tokio::test]
async fn handshake_error_before_args_and_close_and_timeout() {
    // Unknown connection id: error instead of args.
    let (mut client, mut server) = pair();
    let srv = tokio::spawn(async move {
        let sel = server.read().await.unwrap();
        assert_eq!(sel.args, ["$nope"]);
        server.write(b"5.error,19.No such connection.,3.516;").await;
    });
    let err = client
        .handshake("$nope", &ClientInfo::default(), &[])
        .await
        .unwrap_err();
    assert_eq!(guac_err(&err).status(), Some(516));
    srv.await.unwrap();

    // Server hangs up after args.
    let (mut client, mut server) = pair();
    let srv = tokio::spawn(async move {
        server.read().await.unwrap();
        server.write(b"4.args,13.VERSION_1_5_0;").await;
        drop(server);
    });
    let err = client
        .handshake("telnet", &ClientInfo::default(), &[])
        .await
        .unwrap_err();
    assert!(matches!(guac_err(&err), GuacError::Closed { summary } if summary.contains("args: 1")));
    srv.await.unwrap();

    // Server never answers.
    let (mut client, server) = pair();
    client.set_handshake_timeout(Duration::from_millis(100));
    let err = client
        .handshake("ssh", &ClientInfo::default(), &[])
        .await
        .unwrap_err();
    assert!(matches!(guac_err(&err), GuacError::Timeout { .. }), "{err}");
    drop(server);
}

#[tokio::test]
async fn sync_is_echoed_unless_disabled() {
    let (mut client, mut server) = pair();
    server.write(b"4.sync,13.1700000000000;3.nop;").await;
    let ins = client.next_instruction(T).await.unwrap().unwrap();
    assert_eq!(ins, Instruction::new("sync", ["1700000000000"]));
    let echo = server.read().await.unwrap();
    assert_eq!(echo, Instruction::new("sync", ["1700000000000"]));
    assert_eq!(client.state().syncs_echoed, 1);
    assert_eq!(client.display().frames(), 1);
    let nop = client.next_instruction(T).await.unwrap().unwrap();
    assert_eq!(nop.opcode, "nop");
    assert_eq!(client.state().bytes_received, 30);
    assert_eq!(client.state().instructions_received, 2);

    client.set_echo_sync(false);
    server.write(b"4.sync,4.1234;").await;
    client.next_instruction(T).await.unwrap().unwrap();
    client.send_nop().await.unwrap();
    // The first thing the server sees is the nop: no echo was sent.
    assert_eq!(server.read().await.unwrap().opcode, "nop");
    assert_eq!(client.display().last_sync(), Some(1234));

    // Timeout gives Ok(None) without closing; EOF gives Ok(None) and `closed`.
    assert!(
        client
            .next_instruction(Duration::from_millis(20))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!client.state().closed);
    drop(server);
    assert!(client.next_instruction(T).await.unwrap().is_none());
    assert!(client.state().closed);
}

#[tokio::test]
async fn received_streams_and_messages_are_collected() {
    let (mut client, mut server) = pair();
    let text = "héllo wörld €";
    let bytes = text.as_bytes();
    // Split in the middle of the two-byte 'é'.
    let b64 = |b: &[u8]| guacr_protocol::base64::encode(b);
    let mut ins = vec![Instruction::new("clipboard", ["1", "text/plain"])];
    ins.push(Instruction::new("blob", ["1".to_owned(), b64(&bytes[..2])]));
    ins.push(Instruction::new("blob", ["1".to_owned(), b64(&bytes[2..])]));
    ins.push(Instruction::new("end", ["1"]));
    ins.push(Instruction::new("argv", ["3", "text/plain", "font-size"]));
    ins.push(Instruction::new("blob", ["3".to_owned(), b64(b"14")]));
    ins.push(Instruction::new("end", ["3"]));
    ins.push(Instruction::new("name", ["user@host: ~"]));
    ins.push(Instruction::new("msg", ["1", "@u1", "bob"]));
    ins.push(Instruction::new("required", ["username", "password"]));
    ins.push(Instruction::new(
        "file",
        ["4", "application/octet-stream", "a.bin"],
    ));
    ins.push(Instruction::new(
        "blob",
        ["4".to_owned(), b64(&[0, 1, 2, 255])],
    ));
    ins.push(Instruction::new("end", ["4"]));
    ins.push(Instruction::new("ack", ["0", "OK", "0"]));
    ins.push(Instruction::new("error", ["Aborted.", "523"]));
    ins.push(Instruction::new("disconnect", Vec::<String>::new()));
    server.send(&ins).await;
    client.wait_until(T, |s| s.disconnected).await.unwrap();
    let st = client.state();
    assert_eq!(st.clipboards, [text]);
    assert_eq!(st.last_clipboard(), Some(text));
    assert_eq!(st.argvs.len(), 1);
    assert_eq!(
        (st.argvs[0].name.as_str(), st.argvs[0].value.as_str()),
        ("font-size", "14")
    );
    assert_eq!(st.names, ["user@host: ~"]);
    assert_eq!(st.msgs[0].code, 1);
    assert_eq!(st.msgs[0].args, ["@u1", "bob"]);
    assert_eq!(
        st.required,
        [vec!["username".to_owned(), "password".to_owned()]]
    );
    assert_eq!(st.streams.len(), 1);
    assert_eq!(st.streams[0].data, [0, 1, 2, 255]);
    assert_eq!(st.streams[0].name, "a.bin");
    assert_eq!(st.acks[0].status, 0);
    assert_eq!(st.last_error().unwrap().status, 523);
    assert_eq!(st.count("blob"), 4);
    // Stream blobs did not reach the display.
    assert!(client.display().warnings().is_empty());
    // The file stream and its blob were acknowledged.
    for _ in 0..2 {
        let ack = server.read().await.unwrap();
        assert_eq!(ack, Instruction::new("ack", ["4", "OK", "0"]));
    }
}

#[tokio::test]
async fn input_instructions_are_well_formed() {
    let (mut client, mut server) = pair();
    client.type_text("aé€\n").await.unwrap();
    client.send_mouse(10, 20, 1).await.unwrap();
    client.send_size(1280, 720).await.unwrap();
    client
        .send_key_combo(&[keysym::CONTROL_L, 'c' as u32])
        .await
        .unwrap();
    let long = "x".repeat(7000) + "ü";
    client.send_clipboard(&long).await.unwrap();
    client
        .send_argv("color-scheme", "gray-black")
        .await
        .unwrap();
    client.disconnect().await.unwrap();

    let mut keys = Vec::new();
    for _ in 0..8 {
        let k = server.read().await.unwrap();
        assert_eq!(k.opcode, "key");
        keys.push((k.args[0].parse::<u32>().unwrap(), k.args[1].clone()));
    }
    let expect: Vec<(u32, String)> = [0x61, 0xe9, 0x0100_20ac, 0xff0d]
        .iter()
        .flat_map(|k| [(*k, "1".to_owned()), (*k, "0".to_owned())])
        .collect();
    assert_eq!(keys, expect);
    assert_eq!(
        server.read().await.unwrap(),
        Instruction::new("mouse", ["10", "20", "1"])
    );
    assert_eq!(
        server.read().await.unwrap(),
        Instruction::new("size", ["1280", "720"])
    );
    let mut combo = Vec::new();
    for _ in 0..4 {
        combo.push(server.read().await.unwrap().args);
    }
    assert_eq!(
        combo,
        [
            vec!["65507".to_owned(), "1".into()],
            vec!["99".into(), "1".into()],
            vec!["99".into(), "0".into()],
            vec!["65507".into(), "0".into()],
        ]
    );
    // Clipboard stream: clipboard, 2 blobs (6048-byte chunks), end.
    let open = server.read().await.unwrap();
    assert_eq!(open.opcode, "clipboard");
    assert_eq!(open.args[1], "text/plain");
    let stream = open.args[0].clone();
    let mut data = Vec::new();
    loop {
        let i = server.read().await.unwrap();
        assert_eq!(i.args[0], stream);
        if i.opcode == "end" {
            break;
        }
        assert_eq!(i.opcode, "blob");
        let chunk = guacr_protocol::base64::decode_lenient(i.args[1].as_bytes());
        assert!(chunk.len() <= 6048);
        data.extend(chunk);
    }
    assert_eq!(String::from_utf8(data).unwrap(), long);
    let argv = server.read().await.unwrap();
    assert_eq!(argv.opcode, "argv");
    assert_eq!(argv.args[1..], ["text/plain", "color-scheme"]);
    let blob = server.read().await.unwrap();
    assert_eq!(
        guacr_protocol::base64::decode_lenient(blob.args[1].as_bytes()),
        b"gray-black"
    );
    assert_eq!(server.read().await.unwrap().opcode, "end");
    assert_eq!(server.read().await.unwrap().opcode, "disconnect");
    assert!(server.read().await.is_none(), "write side shut down");
}

#[tokio::test]
async fn wait_for_pumps_display_and_reports_on_timeout_and_close() {
    let (mut client, mut server) = pair();
    let red = [255u8, 0, 0, 255];
    let png = encode_png_rgba(2, 1, &[red, red].concat()).unwrap();
    let mut ins = vec![Instruction::new("size", ["0", "8", "8"])];
    ins.extend(img_instructions(1, 14, 0, "image/png", 5, 6, &png));
    ins.push(Instruction::new("sync", ["42"]));
    server.send(&ins).await;
    client
        .wait_for(T, |d, _| d.pixel(0, 6, 6) == [255, 0, 0, 255])
        .await
        .unwrap();
    assert_eq!(client.display().pixel(0, 5, 6), red);
    assert_eq!(client.display().pixel(0, 4, 6), [0; 4]);
    assert_eq!(
        server.read().await.unwrap(),
        Instruction::new("sync", ["42"])
    );

    // A predicate on the last instruction.
    server.write(b"4.name,5.title;").await;
    client
        .wait_for(T, |_, last| last.is_some_and(|i| i.opcode == "name"))
        .await
        .unwrap();

    // Timeout: the error summarises what was seen, including the last error.
    server.write(b"5.error,4.boom,3.512;").await;
    let err = client
        .wait_for(Duration::from_millis(100), |d, _| d.frames() > 5)
        .await
        .unwrap_err();
    let GuacError::Timeout { summary, .. } = guac_err(&err) else {
        panic!("{err}")
    };
    assert!(summary.contains("img: 1"), "{summary}");
    assert!(summary.contains("boom"), "{summary}");
    assert!(summary.contains("512"), "{summary}");

    // wait_for_opcode / wait_for_frame.
    server.write(b"3.nop;4.sync,2.43;3.log,2.hi;").await;
    client.wait_for_frame(T).await.unwrap();
    assert_eq!(client.display().frames(), 2);
    let log = client.wait_for_opcode(T, "log").await.unwrap();
    assert_eq!(log.args, ["hi"]);

    // Closed while waiting.
    drop(server);
    let err = client.wait_for(T, |_, _| false).await.unwrap_err();
    assert!(matches!(guac_err(&err), GuacError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn protocol_violation_is_reported() {
    let (mut client, mut server) = pair();
    server.write(b"4.sync,x.1;").await;
    let err = client.next_instruction(T).await.unwrap_err();
    assert!(matches!(guac_err(&err), GuacError::Protocol(_)), "{err}");
}

#[tokio::test]
async fn tcp_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"3.nop;").await.unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.unwrap();
        buf[..n].to_vec()
    });
    let mut client = GuacClient::connect_tcp(addr).await.unwrap();
    assert_eq!(
        client.next_instruction(T).await.unwrap().unwrap().opcode,
        "nop"
    );
    client.send_nop().await.unwrap();
    assert_eq!(srv.await.unwrap(), b"3.nop;");
}
