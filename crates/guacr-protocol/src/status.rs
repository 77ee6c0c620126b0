use std::fmt;

/// Guacamole protocol status codes (`guacamole/protocol-types.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    Success = 0,
    Unsupported = 256,
    ServerError = 512,
    ServerBusy = 513,
    UpstreamTimeout = 514,
    UpstreamError = 515,
    ResourceNotFound = 516,
    ResourceConflict = 517,
    ResourceClosed = 518,
    UpstreamNotFound = 519,
    UpstreamUnavailable = 520,
    SessionConflict = 521,
    SessionTimeout = 522,
    SessionClosed = 523,
    ClientBadRequest = 768,
    ClientUnauthorized = 769,
    ClientForbidden = 771,
    ClientTimeout = 776,
    ClientOverrun = 781,
    ClientBadType = 783,
    ClientTooMany = 797,
}

impl Status {
    /// Every status code, in numeric order.
    pub const ALL: [Status; 21] = [
        Status::Success,
        Status::Unsupported,
        Status::ServerError,
        Status::ServerBusy,
        Status::UpstreamTimeout,
        Status::UpstreamError,
        Status::ResourceNotFound,
        Status::ResourceConflict,
        Status::ResourceClosed,
        Status::UpstreamNotFound,
        Status::UpstreamUnavailable,
        Status::SessionConflict,
        Status::SessionTimeout,
        Status::SessionClosed,
        Status::ClientBadRequest,
        Status::ClientUnauthorized,
        Status::ClientForbidden,
        Status::ClientTimeout,
        Status::ClientOverrun,
        Status::ClientBadType,
        Status::ClientTooMany,
    ];

    /// The numeric code sent on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Looks a status up by its numeric code.
    pub fn from_code(code: u16) -> Option<Status> {
        Self::ALL.iter().copied().find(|s| s.code() == code)
    }

    /// guacd's symbolic name, e.g. `CLIENT_UNAUTHORIZED`.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Unsupported => "UNSUPPORTED",
            Status::ServerError => "SERVER_ERROR",
            Status::ServerBusy => "SERVER_BUSY",
            Status::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Status::UpstreamError => "UPSTREAM_ERROR",
            Status::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Status::ResourceConflict => "RESOURCE_CONFLICT",
            Status::ResourceClosed => "RESOURCE_CLOSED",
            Status::UpstreamNotFound => "UPSTREAM_NOT_FOUND",
            Status::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Status::SessionConflict => "SESSION_CONFLICT",
            Status::SessionTimeout => "SESSION_TIMEOUT",
            Status::SessionClosed => "SESSION_CLOSED",
            Status::ClientBadRequest => "CLIENT_BAD_REQUEST",
            Status::ClientUnauthorized => "CLIENT_UNAUTHORIZED",
            Status::ClientForbidden => "CLIENT_FORBIDDEN",
            Status::ClientTimeout => "CLIENT_TIMEOUT",
            Status::ClientOverrun => "CLIENT_OVERRUN",
            Status::ClientBadType => "CLIENT_BAD_TYPE",
            Status::ClientTooMany => "CLIENT_TOO_MANY",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_guacd() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
        assert_eq!(Status::ClientUnauthorized.code(), 769);
        assert_eq!(Status::UpstreamNotFound.code(), 519);
        assert_eq!(Status::ClientTimeout.code(), 776);
        assert_eq!(Status::from_code(770), None);
    }
}
