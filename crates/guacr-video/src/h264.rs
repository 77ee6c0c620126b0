//! Just enough H.264 Annex-B parsing to check and route access units: NAL
//! unit boundaries and types, and the SPS profile fields. Never panics on
//! any input.

/// NAL unit type: coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type: coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type: supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type: sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type: picture parameter set.
pub const NAL_PPS: u8 = 8;

/// One NAL unit of an Annex-B stream (without its start code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nal<'a> {
    /// `nal_unit_type` (low 5 bits of the header byte).
    pub kind: u8,
    /// The NAL unit, header byte first.
    pub data: &'a [u8],
    /// Length of the start code that preceded it (3 or 4).
    pub start_code_len: usize,
}

/// Splits an Annex-B byte stream at its start codes (`00 00 01` or
/// `00 00 00 01`). Bytes before the first start code are ignored; empty NAL
/// units are skipped.
pub fn nal_units(stream: &[u8]) -> Vec<Nal<'_>> {
    // Positions (start of the start code, start of the payload).
    let mut marks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            let begin = if i > 0 && stream[i - 1] == 0 {
                i - 1
            } else {
                i
            };
            marks.push((begin, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(marks.len());
    for (n, &(begin, payload)) in marks.iter().enumerate() {
        let end = marks.get(n + 1).map_or(stream.len(), |m| m.0);
        let Some(data) = stream.get(payload..end) else {
            continue;
        };
        let Some(&header) = data.first() else {
            continue;
        };
        out.push(Nal {
            kind: header & 0x1f,
            data,
            start_code_len: payload - begin,
        });
    }
    out
}

/// The profile fields at the start of a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsProfile {
    /// `profile_idc` (66 = Baseline).
    pub profile_idc: u8,
    /// `constraint_set0_flag` … `constraint_set5_flag` and reserved bits.
    pub constraint_flags: u8,
    /// `level_idc` (30 = level 3.0, 40 = level 4.0).
    pub level_idc: u8,
}

impl SpsProfile {
    /// Reads the profile from an SPS NAL unit (header byte first).
    pub fn parse(sps: &[u8]) -> Option<SpsProfile> {
        match sps {
            [header, profile_idc, constraint_flags, level_idc, ..] if header & 0x1f == NAL_SPS => {
                Some(SpsProfile {
                    profile_idc: *profile_idc,
                    constraint_flags: *constraint_flags,
                    level_idc: *level_idc,
                })
            }
            _ => None,
        }
    }

    /// Constrained Baseline: `profile_idc` 66 with `constraint_set1_flag`.
    pub fn is_constrained_baseline(&self) -> bool {
        self.profile_idc == 66 && self.constraint_flags & 0x40 != 0
    }

    /// The SDP `profile-level-id` (six hex digits, e.g. `42c01e`).
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Whether an access unit holds an IDR slice.
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit).iter().any(|n| n.kind == NAL_IDR)
}
