use guacr_terminal::{Terminal, TerminalConfig};
#[test]
fn repro() {
    let mut t = Terminal::new(TerminalConfig { width: 300, height: 230, scrollback: 100, ..TerminalConfig::default() }).unwrap();
    let mut out = Vec::new();
    t.feed(b"\x1b[2J");
    t.render_frame(&mut out);
    t.mouse(5, 5, 8);
    t.mouse(5, 5, 0);
    t.render_frame(&mut out);
    t.feed(b"0\r\n1\r\n");
    t.render_frame(&mut out);
    t.feed(b"a");
    t.render_frame(&mut out);
    t.feed(b"\x1b[M");
    t.render_frame(&mut out);
}
