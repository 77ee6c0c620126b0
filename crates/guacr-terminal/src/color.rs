//! Terminal color schemes, parsed from guacd's `color-scheme` parameter syntax.
//!
//! Accepted forms (as guacd 1.5 accepts them):
//!
//! * one of the pre-defined names `gray-black` (the default), `black-white`,
//!   `green-black`, `white-black`;
//! * a `;`-separated list of `name: value` pairs where `name` is `foreground`,
//!   `background` or `colorN` (N in 0–255) and `value` is `colorN`, an X11
//!   `rgb:R/G/B` specification (1–4 hex digits per component) or an X11 color
//!   name (`red`, `navy`, `gray50`, …).
//!
//! The initial 256-color palette matches guacd's (`palette.c`): the sixteen
//! ANSI colors are guacd's own muted values, the rest is xterm's 256-color
//! cube and grey ramp.

use std::fmt;

/// A 24-bit RGB color.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub const fn new(r: u8, g: u8, b: u8) -> Rgb {
        Rgb { r, g, b }
    }

    /// Linear blend: `t = 0` gives `self`, `t = 255` gives `other`.
    pub fn blend(self, other: Rgb, t: u8) -> Rgb {
        let mix = |a: u8, b: u8| -> u8 {
            let v = (u32::from(a) * (255 - u32::from(t)) + u32::from(b) * u32::from(t) + 127) / 255;
            u8::try_from(v).unwrap_or(u8::MAX)
        };
        Rgb::new(
            mix(self.r, other.r),
            mix(self.g, other.g),
            mix(self.b, other.b),
        )
    }

    /// The "dim" (faint) variant used for SGR 2.
    pub fn dim(self) -> Rgb {
        let d = |v: u8| u8::try_from(u32::from(v) * 2 / 3).unwrap_or(v);
        Rgb::new(d(self.r), d(self.g), d(self.b))
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

/// Default foreground/background and the 256-entry palette.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColorScheme {
    pub foreground: Rgb,
    pub background: Rgb,
    pub palette: [Rgb; 256],
}

impl Default for ColorScheme {
    fn default() -> Self {
        let palette = initial_palette();
        ColorScheme {
            foreground: palette[7],
            background: palette[0],
            palette,
        }
    }
}

/// Why a color scheme string was (partly) rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ColorSchemeError {
    #[error("expecting colon in {0:?}")]
    MissingColon(String),
    #[error("unknown color name {0:?}")]
    UnknownName(String),
    #[error("invalid color value {0:?}")]
    InvalidValue(String),
}

impl ColorScheme {
    /// Parses a guacd color scheme. On error the pairs before the faulty one
    /// stay applied (guacd behaves the same way) and the error is returned
    /// alongside so the caller can log it.
    pub fn parse_lenient(spec: &str) -> (ColorScheme, Option<ColorSchemeError>) {
        let mut scheme = ColorScheme::default();
        let expanded = match spec.trim() {
            "gray-black" => "foreground:color7;background:color0",
            "black-white" => "foreground:color0;background:color15",
            "green-black" => "foreground:color2;background:color0",
            "white-black" => "foreground:color15;background:color0",
            other => other,
        };
        for pair in expanded.split(';') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let Some((name, value)) = pair.split_once(':') else {
                return (
                    scheme,
                    Some(ColorSchemeError::MissingColon(pair.to_owned())),
                );
            };
            let name = name.trim();
            let value = value.trim();
            enum Target {
                Fg,
                Bg,
                Index(usize),
            }
            let target = match name {
                "foreground" => Target::Fg,
                "background" => Target::Bg,
                _ => match parse_color_index(name) {
                    Some(i) => Target::Index(i),
                    None => {
                        return (scheme, Some(ColorSchemeError::UnknownName(name.to_owned())));
                    }
                },
            };
            let Some(color) = parse_color_value(value, &scheme.palette) else {
                return (
                    scheme,
                    Some(ColorSchemeError::InvalidValue(value.to_owned())),
                );
            };
            match target {
                Target::Fg => scheme.foreground = color,
                Target::Bg => scheme.background = color,
                Target::Index(i) => scheme.palette[i] = color,
            }
        }
        (scheme, None)
    }

    /// Parses a guacd color scheme, failing on the first invalid pair.
    pub fn parse(spec: &str) -> Result<ColorScheme, ColorSchemeError> {
        match ColorScheme::parse_lenient(spec) {
            (s, None) => Ok(s),
            (_, Some(e)) => Err(e),
        }
    }
}

/// `colorN` with N in 0..=255.
fn parse_color_index(s: &str) -> Option<usize> {
    let digits = s.strip_prefix("color")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: usize = digits.parse().ok()?;
    (i <= 255).then_some(i)
}

fn parse_color_value(s: &str, palette: &[Rgb; 256]) -> Option<Rgb> {
    if let Some(i) = parse_color_index(s) {
        return Some(palette[i]);
    }
    parse_x11_color(s)
}

/// Parses `rgb:R/G/B` (1–4 hex digits per component, all components the same
/// width, as guacd does: 1 digit is shifted left by 4, 3 and 4 digits are
/// truncated) or an X11 color name (case-insensitive, spaces ignored).
pub fn parse_x11_color(s: &str) -> Option<Rgb> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("rgb:") {
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != 3 {
            return None;
        }
        let width = parts[0].len();
        if !(1..=4).contains(&width)
            || parts
                .iter()
                .any(|p| p.len() != width || !p.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return None;
        }
        let mut out = [0u8; 3];
        for (o, p) in out.iter_mut().zip(&parts) {
            let v = u32::from_str_radix(p, 16).ok()?;
            let v = match width {
                1 => v << 4,
                2 => v,
                3 => v >> 4,
                _ => v >> 8,
            };
            *o = u8::try_from(v).ok()?;
        }
        return Some(Rgb::new(out[0], out[1], out[2]));
    }
    named_color(s)
}

/// A subset of the X11 color names (values from X11's rgb.txt).
fn named_color(name: &str) -> Option<Rgb> {
    let key: String = name
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // gray0..gray100 / grey0..grey100
    for prefix in ["gray", "grey"] {
        if let Some(n) = key.strip_prefix(prefix)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            let n: u32 = n.parse().ok()?;
            if n > 100 {
                return None;
            }
            let v = u8::try_from((n * 255 + 50) / 100).ok()?;
            return Some(Rgb::new(v, v, v));
        }
    }
    let rgb = match key.as_str() {
        "black" => (0x00, 0x00, 0x00),
        "white" => (0xff, 0xff, 0xff),
        "red" | "red1" => (0xff, 0x00, 0x00),
        "red2" => (0xee, 0x00, 0x00),
        "red3" => (0xcd, 0x00, 0x00),
        "red4" | "darkred" => (0x8b, 0x00, 0x00),
        "green" | "green1" | "lime" => (0x00, 0xff, 0x00),
        "green2" => (0x00, 0xee, 0x00),
        "green3" => (0x00, 0xcd, 0x00),
        "green4" => (0x00, 0x8b, 0x00),
        "darkgreen" => (0x00, 0x64, 0x00),
        "blue" | "blue1" => (0x00, 0x00, 0xff),
        "blue2" => (0x00, 0x00, 0xee),
        "blue3" | "mediumblue" => (0x00, 0x00, 0xcd),
        "blue4" | "darkblue" => (0x00, 0x00, 0x8b),
        "navy" | "navyblue" => (0x00, 0x00, 0x80),
        "yellow" | "yellow1" => (0xff, 0xff, 0x00),
        "yellow2" => (0xee, 0xee, 0x00),
        "yellow3" => (0xcd, 0xcd, 0x00),
        "yellow4" => (0x8b, 0x8b, 0x00),
        "cyan" | "cyan1" | "aqua" => (0x00, 0xff, 0xff),
        "cyan2" => (0x00, 0xee, 0xee),
        "cyan3" => (0x00, 0xcd, 0xcd),
        "cyan4" | "darkcyan" => (0x00, 0x8b, 0x8b),
        "magenta" | "magenta1" | "fuchsia" => (0xff, 0x00, 0xff),
        "magenta2" => (0xee, 0x00, 0xee),
        "magenta3" => (0xcd, 0x00, 0xcd),
        "magenta4" | "darkmagenta" => (0x8b, 0x00, 0x8b),
        "gray" | "grey" => (0xbe, 0xbe, 0xbe),
        "darkgray" | "darkgrey" => (0xa9, 0xa9, 0xa9),
        "dimgray" | "dimgrey" => (0x69, 0x69, 0x69),
        "lightgray" | "lightgrey" => (0xd3, 0xd3, 0xd3),
        "silver" => (0xc0, 0xc0, 0xc0),
        "maroon" => (0xb0, 0x30, 0x60),
        "purple" => (0xa0, 0x20, 0xf0),
        "olive" => (0x80, 0x80, 0x00),
        "teal" => (0x00, 0x80, 0x80),
        "orange" => (0xff, 0xa5, 0x00),
        "darkorange" => (0xff, 0x8c, 0x00),
        "pink" => (0xff, 0xc0, 0xcb),
        "brown" => (0xa5, 0x2a, 0x2a),
        "gold" => (0xff, 0xd7, 0x00),
        "violet" => (0xee, 0x82, 0xee),
        "orchid" => (0xda, 0x70, 0xd6),
        "salmon" => (0xfa, 0x80, 0x72),
        "coral" => (0xff, 0x7f, 0x50),
        "tomato" => (0xff, 0x63, 0x47),
        "khaki" => (0xf0, 0xe6, 0x8c),
        "beige" => (0xf5, 0xf5, 0xdc),
        "ivory" => (0xff, 0xff, 0xf0),
        "linen" => (0xfa, 0xf0, 0xe6),
        "wheat" => (0xf5, 0xde, 0xb3),
        "tan" => (0xd2, 0xb4, 0x8c),
        "chocolate" => (0xd2, 0x69, 0x1e),
        "firebrick" => (0xb2, 0x22, 0x22),
        "crimson" => (0xdc, 0x14, 0x3c),
        "indigo" => (0x4b, 0x00, 0x82),
        "turquoise" => (0x40, 0xe0, 0xd0),
        "skyblue" => (0x87, 0xce, 0xeb),
        "steelblue" => (0x46, 0x82, 0xb4),
        "royalblue" => (0x41, 0x69, 0xe1),
        "dodgerblue" => (0x1e, 0x90, 0xff),
        "deepskyblue" => (0x00, 0xbf, 0xff),
        "lightblue" => (0xad, 0xd8, 0xe6),
        "cornflowerblue" => (0x64, 0x95, 0xed),
        "slateblue" => (0x6a, 0x5a, 0xcd),
        "slategray" | "slategrey" => (0x70, 0x80, 0x90),
        "darkslategray" | "darkslategrey" => (0x2f, 0x4f, 0x4f),
        "seagreen" => (0x2e, 0x8b, 0x57),
        "forestgreen" => (0x22, 0x8b, 0x22),
        "limegreen" => (0x32, 0xcd, 0x32),
        "lightgreen" => (0x90, 0xee, 0x90),
        "palegreen" => (0x98, 0xfb, 0x98),
        "springgreen" => (0x00, 0xff, 0x7f),
        "chartreuse" => (0x7f, 0xff, 0x00),
        "olivedrab" => (0x6b, 0x8e, 0x23),
        "lightyellow" => (0xff, 0xff, 0xe0),
        "lightcyan" => (0xe0, 0xff, 0xff),
        "hotpink" => (0xff, 0x69, 0xb4),
        "deeppink" => (0xff, 0x14, 0x93),
        "plum" => (0xdd, 0xa0, 0xdd),
        "lavender" => (0xe6, 0xe6, 0xfa),
        "snow" => (0xff, 0xfa, 0xfa),
        "whitesmoke" => (0xf5, 0xf5, 0xf5),
        "gainsboro" => (0xdc, 0xdc, 0xdc),
        "ghostwhite" => (0xf8, 0xf8, 0xff),
        "aliceblue" => (0xf0, 0xf8, 0xff),
        "azure" => (0xf0, 0xff, 0xff),
        "mintcream" => (0xf5, 0xff, 0xfa),
        "honeydew" => (0xf0, 0xff, 0xf0),
        "seashell" => (0xff, 0xf5, 0xee),
        _ => return None,
    };
    Some(Rgb::new(rgb.0, rgb.1, rgb.2))
}

/// guacd's initial palette: 16 muted ANSI colors + the xterm 256-color cube.
pub fn initial_palette() -> [Rgb; 256] {
    const BASE: [(u8, u8, u8); 16] = [
        (0x00, 0x00, 0x00),
        (0x99, 0x3e, 0x3e),
        (0x3e, 0x99, 0x3e),
        (0x99, 0x99, 0x3e),
        (0x3e, 0x3e, 0x99),
        (0x99, 0x3e, 0x99),
        (0x3e, 0x99, 0x99),
        (0x99, 0x99, 0x99),
        (0x3e, 0x3e, 0x3e),
        (0xff, 0x67, 0x67),
        (0x67, 0xff, 0x67),
        (0xff, 0xff, 0x67),
        (0x67, 0x67, 0xff),
        (0xff, 0x67, 0xff),
        (0x67, 0xff, 0xff),
        (0xff, 0xff, 0xff),
    ];
    const LEVELS: [u8; 6] = [0x00, 0x5f, 0x87, 0xaf, 0xd7, 0xff];
    let mut p = [Rgb::default(); 256];
    for (i, (r, g, b)) in BASE.iter().enumerate() {
        p[i] = Rgb::new(*r, *g, *b);
    }
    for i in 0..216usize {
        p[16 + i] = Rgb::new(LEVELS[i / 36], LEVELS[(i / 6) % 6], LEVELS[i % 6]);
    }
    for i in 0..24u8 {
        let v = 8 + i * 10;
        p[232 + usize::from(i)] = Rgb::new(v, v, v);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_gray_black() {
        let s = ColorScheme::default();
        assert_eq!(s.foreground, Rgb::new(0x99, 0x99, 0x99));
        assert_eq!(s.background, Rgb::new(0, 0, 0));
        assert_eq!(ColorScheme::parse("gray-black").unwrap(), s);
        assert_eq!(ColorScheme::parse("").unwrap(), s);
    }

    #[test]
    fn palette_matches_guacd() {
        let p = initial_palette();
        assert_eq!(p[1], Rgb::new(0x99, 0x3e, 0x3e));
        assert_eq!(p[8], Rgb::new(0x3e, 0x3e, 0x3e));
        assert_eq!(p[15], Rgb::new(0xff, 0xff, 0xff));
        assert_eq!(p[16], Rgb::new(0, 0, 0));
        assert_eq!(p[17], Rgb::new(0, 0, 0x5f));
        assert_eq!(p[196], Rgb::new(0xff, 0, 0));
        assert_eq!(p[231], Rgb::new(0xff, 0xff, 0xff));
        assert_eq!(p[232], Rgb::new(8, 8, 8));
        assert_eq!(p[255], Rgb::new(0xee, 0xee, 0xee));
    }

    #[test]
    fn named_schemes() {
        let bw = ColorScheme::parse("black-white").unwrap();
        assert_eq!(bw.foreground, Rgb::new(0, 0, 0));
        assert_eq!(bw.background, Rgb::new(0xff, 0xff, 0xff));
        let gb = ColorScheme::parse("green-black").unwrap();
        assert_eq!(gb.foreground, Rgb::new(0x3e, 0x99, 0x3e));
        assert_eq!(gb.background, Rgb::new(0, 0, 0));
        let wb = ColorScheme::parse("white-black").unwrap();
        assert_eq!(wb.foreground, Rgb::new(0xff, 0xff, 0xff));
        assert_eq!(wb.background, Rgb::new(0, 0, 0));
    }

    #[test]
    fn custom_syntax() {
        let s = ColorScheme::parse(
            "foreground: rgb:cc/33/22; background:rgb:00/00/ff;color2:rgb:1/2/3; color9 : color4;",
        )
        .unwrap();
        assert_eq!(s.foreground, Rgb::new(0xcc, 0x33, 0x22));
        assert_eq!(s.background, Rgb::new(0, 0, 0xff));
        assert_eq!(s.palette[2], Rgb::new(0x10, 0x20, 0x30));
        assert_eq!(s.palette[9], Rgb::new(0x3e, 0x3e, 0x99));
        // Values refer to the palette as modified so far.
        let s = ColorScheme::parse("color1:rgb:12/34/56;foreground:color1").unwrap();
        assert_eq!(s.foreground, Rgb::new(0x12, 0x34, 0x56));
    }

    #[test]
    fn rgb_widths() {
        assert_eq!(parse_x11_color("rgb:f/0/8"), Some(Rgb::new(0xf0, 0, 0x80)));
        assert_eq!(
            parse_x11_color("rgb:ff/00/80"),
            Some(Rgb::new(0xff, 0, 0x80))
        );
        assert_eq!(
            parse_x11_color("rgb:fff/000/800"),
            Some(Rgb::new(0xff, 0, 0x80))
        );
        assert_eq!(
            parse_x11_color("rgb:ffff/0000/8000"),
            Some(Rgb::new(0xff, 0, 0x80))
        );
        assert_eq!(parse_x11_color("rgb:ff/00"), None);
        assert_eq!(parse_x11_color("rgb:fffff/0/0"), None);
        assert_eq!(parse_x11_color("rgb:zz/00/00"), None);
    }

    #[test]
    fn x11_names() {
        assert_eq!(parse_x11_color("red"), Some(Rgb::new(255, 0, 0)));
        assert_eq!(parse_x11_color("Navy Blue"), Some(Rgb::new(0, 0, 0x80)));
        assert_eq!(parse_x11_color("gray50"), Some(Rgb::new(0x80, 0x80, 0x80)));
        assert_eq!(parse_x11_color("grey100"), Some(Rgb::new(255, 255, 255)));
        assert_eq!(parse_x11_color("nosuchcolor"), None);
        let s = ColorScheme::parse("foreground:white;background:navy").unwrap();
        assert_eq!(s.foreground, Rgb::new(255, 255, 255));
        assert_eq!(s.background, Rgb::new(0, 0, 0x80));
    }

    #[test]
    fn errors_keep_prefix() {
        let (s, e) = ColorScheme::parse_lenient("foreground:rgb:11/22/33;bogus:red;background:red");
        assert_eq!(s.foreground, Rgb::new(0x11, 0x22, 0x33));
        assert_eq!(s.background, Rgb::new(0, 0, 0));
        assert_eq!(e, Some(ColorSchemeError::UnknownName("bogus".into())));
        assert!(matches!(
            ColorScheme::parse("foreground"),
            Err(ColorSchemeError::MissingColon(_))
        ));
        assert!(matches!(
            ColorScheme::parse("color256:red"),
            Err(ColorSchemeError::UnknownName(_))
        ));
        assert!(matches!(
            ColorScheme::parse("foreground:color300"),
            Err(ColorSchemeError::InvalidValue(_))
        ));
    }
}
