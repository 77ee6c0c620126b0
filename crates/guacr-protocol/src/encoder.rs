/// Number of Unicode code points in `s` (the unit of Guacamole element lengths).
#[inline]
pub fn codepoint_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.as_bytes().iter().filter(|&&b| (b & 0xC0) != 0x80).count()
    }
}

/// A value that can be written as one instruction element.
pub trait Element {
    fn write_element(&self, out: &mut Vec<u8>);
}

#[inline]
fn write_len_prefix(out: &mut Vec<u8>, len: usize) {
    write_u64(out, len as u64);
    out.push(b'.');
}

#[inline]
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v > 0 {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&tmp[i..]);
}

#[inline]
fn digits_u64(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

impl Element for str {
    #[inline]
    fn write_element(&self, out: &mut Vec<u8>) {
        write_len_prefix(out, codepoint_len(self));
        out.extend_from_slice(self.as_bytes());
    }
}

impl Element for &str {
    #[inline]
    fn write_element(&self, out: &mut Vec<u8>) {
        (**self).write_element(out)
    }
}

impl Element for String {
    #[inline]
    fn write_element(&self, out: &mut Vec<u8>) {
        self.as_str().write_element(out)
    }
}

macro_rules! unsigned_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            #[inline]
            fn write_element(&self, out: &mut Vec<u8>) {
                let v = *self as u64;
                write_len_prefix(out, digits_u64(v));
                write_u64(out, v);
            }
        }
    )*};
}
macro_rules! signed_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            #[inline]
            fn write_element(&self, out: &mut Vec<u8>) {
                let v = *self as i64;
                let abs = v.unsigned_abs();
                let neg = usize::from(v < 0);
                write_len_prefix(out, digits_u64(abs) + neg);
                if neg == 1 {
                    out.push(b'-');
                }
                write_u64(out, abs);
            }
        }
    )*};
}
unsigned_element!(u8, u16, u32, u64, usize);
signed_element!(i8, i16, i32, i64, isize);

impl Element for f64 {
    fn write_element(&self, out: &mut Vec<u8>) {
        let s = format!("{self}");
        s.as_str().write_element(out)
    }
}

impl Element for bool {
    /// Booleans are written as `1`/`0` (as in `key`).
    fn write_element(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"1.1" } else { b"1.0" });
    }
}

/// Writes one instruction into a reusable buffer.
///
/// ```
/// let mut buf = Vec::new();
/// guacr_protocol::InstructionWriter::new(&mut buf, "size").arg(&0).arg(&1024).arg(&768).finish();
/// assert_eq!(buf, b"4.size,1.0,4.1024,3.768;");
/// ```
pub struct InstructionWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> InstructionWriter<'o> {
    #[inline]
    pub fn new(out: &'o mut Vec<u8>, opcode: &str) -> Self {
        opcode.write_element(out);
        InstructionWriter { out }
    }

    #[inline]
    #[must_use]
    pub fn arg<E: Element + ?Sized>(self, value: &E) -> Self {
        self.out.push(b',');
        value.write_element(self.out);
        self
    }

    /// Writes a base64 element straight from raw bytes (for `blob`).
    #[must_use]
    pub fn arg_base64(self, data: &[u8]) -> Self {
        self.out.push(b',');
        let len = crate::base64::encoded_len(data.len());
        write_len_prefix(self.out, len);
        crate::base64::encode_into(data, self.out);
        self
    }

    #[inline]
    pub fn finish(self) {
        self.out.push(b';');
    }
}

/// Writes `opcode` and `args` (all strings) into `out`.
pub fn encode(out: &mut Vec<u8>, opcode: &str, args: &[&str]) {
    let mut w = InstructionWriter::new(out, opcode);
    for a in args {
        w = w.arg(*a);
    }
    w.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "\u{72ac}\u{10b00}z\u{e1}";

    #[test]
    fn guacd_writer_vector() {
        let mut buf = Vec::new();
        encode(&mut buf, "name", &[&format!("a{U}b{U}c")]);
        encode(&mut buf, "sync", &["12345"]);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            format!("4.name,11.a{U}b{U}c;4.sync,5.12345;")
        );
    }

    #[test]
    fn integers() {
        let mut buf = Vec::new();
        InstructionWriter::new(&mut buf, "copy")
            .arg(&-1i32)
            .arg(&0u32)
            .arg(&i64::MIN)
            .arg(&u64::MAX)
            .arg(&true)
            .finish();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "4.copy,2.-1,1.0,20.-9223372036854775808,20.18446744073709551615,1.1;"
        );
    }
}
