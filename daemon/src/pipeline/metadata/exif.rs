//! EXIF (TIFF-structured) via kamadak-exif: camera, capture time, GPS,
//! orientation, and the MWG descriptive fields (ImageDescription, Artist,
//! Copyright). Only the primary image (IFD0 and its sub-IFDs) is read, never
//! the thumbnail's IFD1.

use ::exif::{Context, Exif, Field, In, Reader, Tag, Value};

use super::{
    Metadata, checked_gps, checked_orientation, clean_text, decode_legacy_text, parse_offset,
    quote, split_mwg_list, stamp_or_warn,
};

/// Most parser complaints listed one by one; the rest are counted.
const MAX_LISTED_ERRORS: usize = 5;

/// Reads one EXIF block into a partial record. Never fails: a malformed block
/// gives a warning and whatever could be read.
pub(super) fn read(block: &[u8]) -> Metadata {
    let mut md = Metadata::default();
    let warnings = &mut md.warnings;
    // Tolerate the APP1 / WebP prefix if the container left it on.
    let data = block.strip_prefix(b"Exif\0\0").unwrap_or(block);
    let exif = match Reader::new()
        .continue_on_error(true)
        .read_raw(data.to_vec())
    {
        Ok(exif) => exif,
        Err(::exif::Error::PartialResult(partial)) => {
            let (exif, errors) = partial.into_inner();
            for err in errors.iter().take(MAX_LISTED_ERRORS) {
                warnings.push(format!("malformed EXIF: {err}"));
            }
            if errors.len() > MAX_LISTED_ERRORS {
                warnings.push(format!(
                    "malformed EXIF: {} more problems",
                    errors.len() - MAX_LISTED_ERRORS
                ));
            }
            exif
        }
        Err(err) => {
            warnings.push(format!("malformed EXIF: {err}"));
            return md;
        }
    };

    md.camera_make = text(&exif, Tag::Make);
    md.camera_model = text(&exif, Tag::Model);
    if let Some(field) = exif.get_field(Tag::Orientation, In::PRIMARY) {
        match field.value.get_uint(0) {
            Some(value) => {
                md.orientation = checked_orientation(i64::from(value), "EXIF Orientation", warnings)
            }
            None => warnings.push("EXIF Orientation has no numeric value; ignored".to_owned()),
        }
    }
    md.capture_time = capture_time(
        &exif,
        [
            Tag::DateTimeOriginal,
            Tag::SubSecTimeOriginal,
            Tag::OffsetTimeOriginal,
        ],
        "EXIF DateTimeOriginal",
        warnings,
    )
    .or_else(|| {
        capture_time(
            &exif,
            [
                Tag::DateTimeDigitized,
                Tag::SubSecTimeDigitized,
                Tag::OffsetTimeDigitized,
            ],
            "EXIF DateTimeDigitized",
            warnings,
        )
    });
    md.gps = gps(&exif, warnings);

    // MWG: these EXIF fields, when not blank, win over XMP and IIM.
    md.caption = text(&exif, Tag::ImageDescription);
    md.creator = text(&exif, Tag::Artist)
        .map(|artist| split_mwg_list(&artist))
        .unwrap_or_default();
    // EXIF Copyright is "photographer\0editor"; the first part that is not blank.
    md.copyright = text(&exif, Tag::Copyright);
    md
}

/// A field of the primary image; the date tags are also looked for in IFD0,
/// where some writers put them.
fn field(exif: &Exif, tag: Tag) -> Option<&Field> {
    exif.get_field(tag, In::PRIMARY)
        .or_else(|| match tag.context() {
            Context::Exif => exif.get_field(Tag(Context::Tiff, tag.number()), In::PRIMARY),
            _ => None,
        })
}

/// The first non-blank string of an ASCII (or byte) field.
fn text(exif: &Exif, tag: Tag) -> Option<String> {
    let field = field(exif, tag)?;
    match &field.value {
        Value::Ascii(parts) => parts
            .iter()
            .find_map(|part| clean_text(&decode_legacy_text(part))),
        Value::Byte(bytes) | Value::Undefined(bytes, _) => bytes
            .split(|&b| b == 0)
            .find_map(|part| clean_text(&decode_legacy_text(part))),
        _ => None,
    }
}

/// `[date-time, sub-seconds, offset]` tags to a capture time.
fn capture_time(
    exif: &Exif,
    [main, subsec, offset]: [Tag; 3],
    source: &str,
    warnings: &mut Vec<String>,
) -> Option<super::CaptureTime> {
    let raw = text(exif, main)?;
    let mut stamp = stamp_or_warn(&raw, source, warnings)?;
    if stamp.time.is_some() {
        if stamp.fraction.is_none()
            && let Some(digits) = text(exif, subsec)
        {
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                stamp.fraction = Some(digits);
            } else {
                warnings.push(format!(
                    "EXIF {subsec} {} is not a number; ignored",
                    quote(&digits)
                ));
            }
        }
        if stamp.offset.is_none()
            && let Some(raw_offset) = text(exif, offset)
        {
            match parse_offset(&raw_offset) {
                Ok(parsed) => stamp.offset = parsed,
                Err(()) => warnings.push(format!(
                    "EXIF {offset} {} is not a UTC offset; ignored",
                    quote(&raw_offset)
                )),
            }
        }
    }
    Some(stamp.into_capture_time(source))
}

fn gps(exif: &Exif, warnings: &mut Vec<String>) -> Option<super::Gps> {
    let latitude = exif.get_field(Tag::GPSLatitude, In::PRIMARY);
    let longitude = exif.get_field(Tag::GPSLongitude, In::PRIMARY);
    let (latitude, longitude) = match (latitude, longitude) {
        (None, None) => return None,
        (Some(latitude), Some(longitude)) => (latitude, longitude),
        _ => {
            warnings.push("EXIF GPS has only one of latitude and longitude; ignored".to_owned());
            return None;
        }
    };
    let latitude = coordinate(exif, latitude, Tag::GPSLatitudeRef, ('N', 'S'), warnings)?;
    let longitude = coordinate(exif, longitude, Tag::GPSLongitudeRef, ('E', 'W'), warnings)?;
    let altitude = exif
        .get_field(Tag::GPSAltitude, In::PRIMARY)
        .and_then(|field| {
            let value = numbers(&field.value).and_then(|v| v.first().copied());
            if value.is_none() {
                warnings.push("EXIF GPSAltitude is not a number; ignored".to_owned());
            }
            value
        });
    let below_sea_level = exif
        .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
        .and_then(|field| field.value.get_uint(0))
        // 1 = below sea level; EXIF 3.0 adds 3 = below the ellipsoid.
        .is_some_and(|r| r == 1 || r == 3);
    let altitude = altitude.map(|a| if below_sea_level { -a.abs() } else { a });
    checked_gps(latitude, longitude, altitude, "EXIF GPS", warnings)
}

/// A degrees / minutes / seconds field and its N-S or E-W reference, signed.
fn coordinate(
    exif: &Exif,
    field: &Field,
    reference: Tag,
    (positive, negative): (char, char),
    warnings: &mut Vec<String>,
) -> Option<f64> {
    let Some(degrees) = numbers(&field.value).and_then(|parts| dms(&parts)) else {
        warnings.push(format!(
            "EXIF {} {} is not a valid coordinate; GPS ignored",
            field.tag,
            field.display_value()
        ));
        return None;
    };
    let sign = match text(exif, reference)
        .and_then(|r| r.chars().next())
        .map(|c| c.to_ascii_uppercase())
    {
        Some(c) if c == positive => 1.0,
        Some(c) if c == negative => -1.0,
        Some(c) => {
            warnings.push(format!(
                "EXIF {reference} {c:?} is not {positive} or {negative}; GPS ignored"
            ));
            return None;
        }
        None => {
            warnings.push(format!("EXIF {reference} is missing; {positive} assumed"));
            1.0
        }
    };
    Some(sign * degrees)
}

/// One to three non-negative parts (degrees, minutes, seconds) to degrees.
fn dms(parts: &[f64]) -> Option<f64> {
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
        return None;
    }
    Some(
        parts
            .iter()
            .zip([1.0, 60.0, 3600.0])
            .map(|(p, d)| p / d)
            .sum(),
    )
}

/// The numeric values of a field; `None` if any is not a number (e.g. x/0).
fn numbers(value: &Value) -> Option<Vec<f64>> {
    let ratio = |num: f64, denom: f64| (denom != 0.0).then(|| num / denom);
    match value {
        Value::Rational(v) => v
            .iter()
            .map(|r| ratio(f64::from(r.num), f64::from(r.denom)))
            .collect(),
        Value::SRational(v) => v
            .iter()
            .map(|r| ratio(f64::from(r.num), f64::from(r.denom)))
            .collect(),
        Value::Short(v) => Some(v.iter().map(|&n| f64::from(n)).collect()),
        Value::Long(v) => Some(v.iter().map(|&n| f64::from(n)).collect()),
        Value::Float(v) => Some(v.iter().map(|&n| f64::from(n)).collect()),
        Value::Double(v) => Some(v.clone()),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::read;

    /// A TIFF field value for the test builder.
    #[derive(Debug, Clone)]
    pub(in crate::pipeline::metadata) enum V {
        Ascii(&'static str),
        Short(u16),
        Byte(u8),
        Rational(Vec<(u32, u32)>),
    }

    /// An IFD entry: tag number and value.
    pub(in crate::pipeline::metadata) type E = (u16, V);

    /// Builds a TIFF-structured EXIF block: IFD0, and an Exif and a GPS IFD
    /// when given, in either byte order.
    pub(in crate::pipeline::metadata) fn tiff(
        little_endian: bool,
        ifd0: &[E],
        exif: &[E],
        gps: &[E],
    ) -> Vec<u8> {
        let le = little_endian;
        let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let encode = |v: &V| -> (u16, u32, Vec<u8>) {
            match v {
                V::Ascii(s) => (2, s.len() as u32 + 1, [s.as_bytes(), &[0]].concat()),
                V::Short(n) => (3, 1, u16b(*n).to_vec()),
                V::Byte(b) => (1, 1, vec![*b]),
                V::Rational(parts) => (
                    5,
                    parts.len() as u32,
                    parts
                        .iter()
                        .flat_map(|&(n, d)| [u32b(n), u32b(d)].concat())
                        .collect(),
                ),
            }
        };
        let ifd_size = |entries: &[(u16, u16, u32, Vec<u8>)]| {
            2 + 12 * entries.len()
                + 4
                + entries
                    .iter()
                    .map(|e| {
                        if e.3.len() > 4 {
                            e.3.len() + e.3.len() % 2
                        } else {
                            0
                        }
                    })
                    .sum::<usize>()
        };
        let encode_all = |entries: &[E]| -> Vec<(u16, u16, u32, Vec<u8>)> {
            entries
                .iter()
                .map(|(tag, v)| {
                    let (typ, count, data) = encode(v);
                    (*tag, typ, count, data)
                })
                .collect()
        };
        let exif_entries = encode_all(exif);
        let gps_entries = encode_all(gps);
        let mut ifd0_entries = encode_all(ifd0);
        // Pointer entries are placeholders until the offsets are known.
        if !exif.is_empty() {
            ifd0_entries.push((0x8769, 4, 1, vec![0; 4]));
        }
        if !gps.is_empty() {
            ifd0_entries.push((0x8825, 4, 1, vec![0; 4]));
        }
        let exif_at = 8 + ifd_size(&ifd0_entries);
        let gps_at = exif_at
            + if exif.is_empty() {
                0
            } else {
                ifd_size(&exif_entries)
            };
        for entry in &mut ifd0_entries {
            match entry.0 {
                0x8769 => entry.3 = u32b(exif_at as u32).to_vec(),
                0x8825 => entry.3 = u32b(gps_at as u32).to_vec(),
                _ => {}
            }
        }
        ifd0_entries.sort_by_key(|e| e.0);
        let mut out = if le {
            b"II*\0".to_vec()
        } else {
            b"MM\0*".to_vec()
        };
        out.extend(u32b(8));
        for entries in [&ifd0_entries, &exif_entries, &gps_entries] {
            if entries.is_empty() {
                continue;
            }
            let base = out.len();
            let mut data_at = base + 2 + 12 * entries.len() + 4;
            let mut data = Vec::new();
            out.extend(u16b(entries.len() as u16));
            for (tag, typ, count, bytes) in entries {
                out.extend(u16b(*tag));
                out.extend(u16b(*typ));
                out.extend(u32b(*count));
                if bytes.len() <= 4 {
                    let mut inline = bytes.clone();
                    inline.resize(4, 0);
                    out.extend(inline);
                } else {
                    out.extend(u32b(data_at as u32));
                    data.extend(bytes);
                    if bytes.len() % 2 == 1 {
                        data.push(0);
                    }
                    data_at = base + 2 + 12 * entries.len() + 4 + data.len();
                }
            }
            out.extend(u32b(0));
            out.extend(data);
        }
        out
    }

    pub(in crate::pipeline::metadata) fn dms(d: u32, m: u32, s_num: u32, s_den: u32) -> V {
        V::Rational(vec![(d, 1), (m, 1), (s_num, s_den)])
    }

    fn camera(little_endian: bool) -> Vec<u8> {
        tiff(
            little_endian,
            &[
                (0x010F, V::Ascii("Canon ")),
                (0x0110, V::Ascii("Canon EOS 40D")),
                (0x0112, V::Short(6)),
            ],
            &[
                (0x9003, V::Ascii("2008:05:30 15:56:01")),
                (0x9004, V::Ascii("2008:05:30 15:56:02")),
                (0x9011, V::Ascii("+02:00")),
                (0x9291, V::Ascii("5")),
            ],
            &[
                (0x0001, V::Ascii("S")),
                (0x0002, dms(33, 51, 3564, 100)),
                (0x0003, V::Ascii("W")),
                (0x0004, dms(70, 30, 0, 1)),
                (0x0005, V::Byte(1)),
                (0x0006, V::Rational(vec![(4235, 10)])),
            ],
        )
    }

    #[test]
    fn camera_time_orientation_and_gps_in_both_byte_orders() {
        for little_endian in [true, false] {
            let md = read(&camera(little_endian));
            assert_eq!(md.warnings, Vec::<String>::new());
            assert_eq!(md.camera_make.as_deref(), Some("Canon"));
            assert_eq!(md.camera_model.as_deref(), Some("Canon EOS 40D"));
            assert_eq!(md.orientation, Some(6));
            let time = md.capture_time.unwrap();
            assert_eq!(time.local, "2008-05-30T15:56:01.500");
            assert_eq!(time.offset.as_deref(), Some("+02:00"));
            assert_eq!(time.source, "EXIF DateTimeOriginal");
            let gps = md.gps.unwrap();
            // 33°51'35.64" S, 70°30' W, 423.5 m below sea level.
            assert!(
                (gps.latitude - -(33.0 + 51.0 / 60.0 + 35.64 / 3600.0)).abs() < 1e-9,
                "{gps:?}"
            );
            assert!((gps.longitude - -70.5).abs() < 1e-9, "{gps:?}");
            assert_eq!(gps.altitude_m, Some(-423.5));
        }
    }

    #[test]
    fn gps_north_east_positive_and_missing_reference_assumed_positive() {
        let block = tiff(
            true,
            &[],
            &[],
            &[
                (0x0001, V::Ascii("N")),
                (0x0002, dms(43, 28, 2, 1)),
                (0x0004, dms(11, 53, 6, 1)),
                (0x0005, V::Byte(0)),
            ],
        );
        let md = read(&block);
        let gps = md.gps.unwrap();
        assert!((gps.latitude - (43.0 + 28.0 / 60.0 + 2.0 / 3600.0)).abs() < 1e-9);
        assert!((gps.longitude - (11.0 + 53.0 / 60.0 + 6.0 / 3600.0)).abs() < 1e-9);
        assert_eq!(gps.altitude_m, None);
        assert_eq!(md.warnings, ["EXIF GPSLongitudeRef is missing; E assumed"]);
    }

    #[test]
    fn gps_with_zero_denominator_or_at_zero_zero_is_dropped_with_a_warning() {
        let bad = tiff(
            true,
            &[],
            &[],
            &[
                (0x0001, V::Ascii("N")),
                (0x0002, dms(43, 0, 0, 0)),
                (0x0003, V::Ascii("E")),
                (0x0004, dms(1, 0, 0, 1)),
            ],
        );
        let md = read(&bad);
        assert_eq!(md.gps, None);
        assert!(
            md.warnings[0].contains("GPSLatitude")
                && md.warnings[0].contains("not a valid coordinate"),
            "{:?}",
            md.warnings
        );

        let zero = tiff(
            true,
            &[],
            &[],
            &[
                (0x0001, V::Ascii("N")),
                (0x0002, dms(0, 0, 0, 1)),
                (0x0003, V::Ascii("E")),
                (0x0004, dms(0, 0, 0, 1)),
            ],
        );
        let md = read(&zero);
        assert_eq!(md.gps, None);
        assert!(md.warnings[0].contains("0, 0"), "{:?}", md.warnings);
    }

    #[test]
    fn orientation_outside_one_to_eight_is_none_with_a_warning() {
        for value in [0, 9, 300] {
            let md = read(&tiff(false, &[(0x0112, V::Short(value))], &[], &[]));
            assert_eq!(md.orientation, None);
            assert_eq!(
                md.warnings,
                [format!(
                    "EXIF Orientation {value} is not one of the EXIF orientations 1–8; ignored"
                )]
            );
        }
    }

    #[test]
    fn blank_original_falls_back_to_digitized_and_invalid_warns() {
        let blank = tiff(
            true,
            &[],
            &[
                (0x9003, V::Ascii("    :  :     :  :  ")),
                (0x9004, V::Ascii("2011:05:06 09:59:48")),
            ],
            &[],
        );
        let md = read(&blank);
        let time = md.capture_time.unwrap();
        assert_eq!(
            (time.local.as_str(), time.offset, time.source.as_str()),
            ("2011-05-06T09:59:48", None, "EXIF DateTimeDigitized")
        );
        assert!(md.warnings.is_empty(), "{:?}", md.warnings);

        let invalid = tiff(
            true,
            &[],
            &[
                (0x9003, V::Ascii("2011:02:30 09:59:48")),
                (0x9004, V::Ascii("2011:05:06 09:59:48")),
            ],
            &[],
        );
        let md = read(&invalid);
        assert_eq!(md.capture_time.unwrap().source, "EXIF DateTimeDigitized");
        assert_eq!(
            md.warnings,
            ["EXIF DateTimeOriginal \"2011:02:30 09:59:48\" is not a valid date and time; ignored"]
        );
    }

    #[test]
    fn mwg_fields_artist_list_and_latin1_text() {
        let block = tiff(
            true,
            &[
                (0x010E, V::Ascii("                               ")),
                (0x013B, V::Ascii("Ann Smith; \"Doe; John\"")),
                (0x8298, V::Ascii("(c) Ann Smith")),
            ],
            &[],
            &[],
        );
        let md = read(&block);
        assert_eq!(md.caption, None, "a blank ImageDescription is no caption");
        assert_eq!(md.creator, ["Ann Smith", "Doe; John"]);
        assert_eq!(md.copyright.as_deref(), Some("(c) Ann Smith"));

        // Latin-1 bytes in an ASCII field.
        let mut latin1 = tiff(true, &[(0x013B, V::Ascii("Ren? Dupont"))], &[], &[]);
        let at = latin1.windows(4).position(|w| w == b"Ren?").unwrap() + 3;
        latin1[at] = 0xE9;
        assert_eq!(read(&latin1).creator, ["René Dupont"]);
    }

    #[test]
    fn exif_prefix_is_tolerated() {
        let block = [b"Exif\0\0".as_slice(), &camera(true)].concat();
        assert_eq!(read(&block).camera_model.as_deref(), Some("Canon EOS 40D"));
    }

    #[test]
    fn malformed_blocks_warn_and_keep_what_could_be_read() {
        let md = read(b"not a tiff at all");
        assert_eq!(md.camera_make, None);
        assert_eq!(md.warnings.len(), 1);
        assert!(
            md.warnings[0].starts_with("malformed EXIF: "),
            "{:?}",
            md.warnings
        );

        // Cut inside the GPS IFD: IFD0 and the Exif IFD are still there.
        let whole = camera(false);
        for cut in [whole.len() - 20, whole.len() - 60] {
            let md = read(&whole[..cut]);
            assert_eq!(md.camera_make.as_deref(), Some("Canon"), "cut at {cut}");
            assert!(
                md.warnings
                    .iter()
                    .any(|w| w.starts_with("malformed EXIF: ")),
                "cut at {cut}: {:?}",
                md.warnings
            );
        }
        // Every truncation is handled without a panic.
        for cut in 0..whole.len() {
            let _ = read(&whole[..cut]);
        }
    }
}
