use std::fmt;

/// Guacamole protocol versions negotiated in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    V1_0_0,
    V1_1_0,
    V1_3_0,
    V1_5_0,
}

impl ProtocolVersion {
    /// The newest version, announced first in `args`.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V1_5_0;

    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V1_0_0 => "VERSION_1_0_0",
            ProtocolVersion::V1_1_0 => "VERSION_1_1_0",
            ProtocolVersion::V1_3_0 => "VERSION_1_3_0",
            ProtocolVersion::V1_5_0 => "VERSION_1_5_0",
        }
    }

    /// Parses a version string; like guacd, an empty or unknown string is 1.0.0.
    pub fn from_wire(s: &str) -> ProtocolVersion {
        match s {
            "VERSION_1_1_0" => ProtocolVersion::V1_1_0,
            "VERSION_1_3_0" => ProtocolVersion::V1_3_0,
            "VERSION_1_5_0" => ProtocolVersion::V1_5_0,
            _ => ProtocolVersion::V1_0_0,
        }
    }

    /// Whether the `required` instruction may be sent (≥ 1.3.0).
    pub fn supports_required(self) -> bool {
        self >= ProtocolVersion::V1_3_0
    }

    /// Whether `msg` and `name` are understood (≥ 1.5.0).
    pub fn supports_msg(self) -> bool {
        self >= ProtocolVersion::V1_5_0
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_like_guacd() {
        assert_eq!(ProtocolVersion::from_wire(""), ProtocolVersion::V1_0_0);
        assert_eq!(
            ProtocolVersion::from_wire("VERSION_9_9_9"),
            ProtocolVersion::V1_0_0
        );
        assert_eq!(
            ProtocolVersion::from_wire("VERSION_1_3_0"),
            ProtocolVersion::V1_3_0
        );
        assert!(ProtocolVersion::V1_5_0.supports_msg());
        assert!(!ProtocolVersion::V1_1_0.supports_required());
    }
}
