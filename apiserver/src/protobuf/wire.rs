//! The protobuf wire format, read from a byte slice: keys, varints, fixed-width numbers and length-delimited
//! fields. Nothing here knows Kubernetes.

use super::DecodeError;

/// How a field's value is laid out on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    LengthDelimited,
    Fixed32,
}

impl WireType {
    pub fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::LengthDelimited => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// A cursor over one message's bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next field's tag and wire type.
    pub fn key(&mut self) -> Result<(u32, WireType), DecodeError> {
        let key = self.varint()?;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::LengthDelimited,
            5 => WireType::Fixed32,
            other => return Err(DecodeError::malformed(format!("unsupported wire type {other}"))),
        };
        let tag = key >> 3;
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::malformed(format!("invalid field number {tag}")));
        }
        Ok((tag as u32, wire_type))
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for (i, byte) in self.bytes.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                break;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(DecodeError::malformed("truncated or overlong varint".to_owned()))
    }

    pub fn fixed64(&mut self) -> Result<[u8; 8], DecodeError> {
        let bytes = self.take(8)?;
        Ok(bytes.try_into().expect("took eight bytes"))
    }

    pub fn fixed32(&mut self) -> Result<[u8; 4], DecodeError> {
        let bytes = self.take(4)?;
        Ok(bytes.try_into().expect("took four bytes"))
    }

    /// A length-delimited value: its length, then that many bytes.
    pub fn length_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| DecodeError::malformed("length-delimited field too long".to_owned()))?;
        self.take(len)
    }

    /// Skips a value of a field the table does not know, as Go's decoder does.
    pub fn skip(&mut self, wire_type: WireType) -> Result<(), DecodeError> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::LengthDelimited => self.length_delimited().map(drop),
            WireType::Fixed32 => self.fixed32().map(drop),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.bytes.len() {
            return Err(DecodeError::malformed(format!(
                "a field of {len} bytes runs past the end of its message ({} left)",
                self.bytes.len()
            )));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> Result<u64, DecodeError> {
        Reader::new(bytes).varint()
    }

    #[test]
    fn varints_decode_and_bad_ones_fail() {
        assert_eq!(varint(&[0x00]).unwrap(), 0);
        assert_eq!(varint(&[0x96, 0x01]).unwrap(), 150);
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&minus_one).unwrap() as i64, -1);
        assert!(varint(&[0x80]).is_err(), "truncated");
        assert!(varint(&[]).is_err(), "empty");
        let overlong = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(varint(&overlong).is_err(), "over 64 bits");
        assert!(varint(&[0x80; 11]).is_err(), "over ten bytes");
    }

    #[test]
    fn keys_and_lengths_are_checked() {
        assert_eq!(
            Reader::new(&[0x12]).key().unwrap(),
            (2, WireType::LengthDelimited)
        );
        assert!(Reader::new(&[0x03]).key().is_err(), "group start");
        assert!(Reader::new(&[0x02]).key().is_err(), "field number 0");
        let mut reader = Reader::new(&[0x05, b'a', b'b']);
        assert!(reader.length_delimited().is_err(), "longer than the rest");
        let mut reader = Reader::new(&[0x02, b'a', b'b', 0x08]);
        assert_eq!(reader.length_delimited().unwrap(), b"ab");
        assert!(!reader.is_empty());
    }
}
