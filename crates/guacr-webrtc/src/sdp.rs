//! The little SDP text handling str0m does not do for us: finding the
//! browser's `recvonly` video m-line, turning video off in an offer, and
//! announcing the server's bitrate ceiling (`b=TIAS`) in the answer. Plain
//! line edits; never panics on any input.

/// One m-section of an SDP body: its `m=` line and the lines after it.
struct Section<'a> {
    lines: Vec<&'a str>,
}

impl Section<'_> {
    fn is_video(&self) -> bool {
        self.lines
            .first()
            .is_some_and(|m| m.starts_with("m=video "))
    }

    /// The port of the `m=` line (0: rejected).
    fn port(&self) -> Option<u32> {
        self.lines
            .first()
            .and_then(|m| m.split(' ').nth(1))
            .and_then(|p| p.parse().ok())
    }

    fn has(&self, attr: &str) -> bool {
        self.lines.contains(&attr)
    }
}

/// Splits `sdp` into the session part and its m-sections.
fn split(sdp: &str) -> (Vec<&str>, Vec<Section<'_>>) {
    let mut session = Vec::new();
    let mut sections: Vec<Section<'_>> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            sections.push(Section { lines: vec![line] });
        } else if let Some(s) = sections.last_mut() {
            s.lines.push(line);
        } else {
            session.push(line);
        }
    }
    (session, sections)
}

fn join(session: &[&str], sections: &[Vec<String>]) -> String {
    let mut out = String::new();
    for l in session {
        out.push_str(l);
        out.push_str("\r\n");
    }
    for s in sections {
        for l in s {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out
}

/// Whether the offer has a live video m-line the browser only receives
/// (`a=recvonly`, port not 0).
pub fn offers_recvonly_video(offer: &str) -> bool {
    let (_, sections) = split(offer);
    sections
        .iter()
        .any(|s| s.is_video() && s.port() != Some(0) && s.has("a=recvonly"))
}

/// The offer with every video m-line made `a=inactive`, so the answer
/// declines video (the session then draws with `img` on the data channel).
pub fn without_video(offer: &str) -> String {
    let (session, sections) = split(offer);
    let sections: Vec<Vec<String>> = sections
        .iter()
        .map(|s| {
            let video = s.is_video();
            s.lines
                .iter()
                .map(|l| match *l {
                    "a=recvonly" | "a=sendrecv" | "a=sendonly" if video => "a=inactive".to_owned(),
                    other => other.to_owned(),
                })
                .collect()
        })
        .collect();
    join(&session, &sections)
}

/// The answer with `b=TIAS:<bps>` in every active video m-section (after
/// its `c=` line, where RFC 4566 puts bandwidth lines).
pub fn with_tias(answer: &str, bps: u32) -> String {
    let (session, sections) = split(answer);
    let sections: Vec<Vec<String>> = sections
        .iter()
        .map(|s| {
            let mut lines: Vec<String> = s
                .lines
                .iter()
                .filter(|l| !(s.is_video() && l.starts_with("b=TIAS:")))
                .map(|l| (*l).to_owned())
                .collect();
            if s.is_video() && !s.has("a=inactive") && s.port() != Some(0) {
                let at = lines
                    .iter()
                    .position(|l| l.starts_with("c="))
                    .map_or(1, |i| i + 1);
                lines.insert(at.min(lines.len()), format!("b=TIAS:{bps}"));
            }
            lines
        })
        .collect();
    join(&session, &sections)
}

/// The `b=TIAS` value of the first video m-section, if any.
pub fn tias(sdp: &str) -> Option<u32> {
    let (_, sections) = split(sdp);
    sections
        .iter()
        .filter(|s| s.is_video())
        .flat_map(|s| s.lines.iter())
        .find_map(|l| l.strip_prefix("b=TIAS:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the first video m-section of `sdp` is `a=sendonly` (the server
/// sends video in this answer).
pub fn answer_sends_video(sdp: &str) -> bool {
    let (_, sections) = split(sdp);
    sections
        .iter()
        .find(|s| s.is_video())
        .is_some_and(|s| s.port() != Some(0) && s.has("a=sendonly"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn finds_and_removes_video() {
        assert!(offers_recvonly_video(OFFER));
        let off = without_video(OFFER);
        assert!(!offers_recvonly_video(&off));
        assert!(off.contains("a=inactive\r\n"));
        assert!(off.contains("a=mid:0\r\n"));
        assert!(!offers_recvonly_video(
            &OFFER.replace("m=video 9", "m=video 0")
        ));
        assert!(!offers_recvonly_video(
            &OFFER.replace("a=recvonly", "a=sendrecv")
        ));
        assert!(!offers_recvonly_video("garbage\n\n\r"));
    }

    #[test]
    fn tias_goes_after_c_line() {
        let a = with_tias(&OFFER.replace("a=recvonly", "a=sendonly"), 4_000_000);
        assert!(a.contains("c=IN IP4 0.0.0.0\r\nb=TIAS:4000000\r\na=mid:1"));
        assert_eq!(tias(&a), Some(4_000_000));
        assert!(answer_sends_video(&a));
        // Not on inactive video, not on the data channel.
        let a = with_tias(&without_video(OFFER), 1000);
        assert_eq!(tias(&a), None);
        assert_eq!(a.matches("b=TIAS").count(), 0);
    }
}
