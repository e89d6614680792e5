//! IPTC-IIM datasets (Photoshop resource 0x0404, TIFF tag 33723): the legacy
//! descriptive fields, the fallback under XMP.

use super::{Metadata, clean_text, decode_legacy_text, stamp_or_warn};

/// Tag marker that starts every dataset.
const MARKER: u8 = 0x1C;

/// 1:90 Coded Character Set values that mean UTF-8 (ISO 2022 escapes).
const UTF8_ESCAPES: [&[u8]; 3] = [b"\x1b%G", b"\x1b%/G", b"\x1b%/I"];

/// Reads an IIM block into a partial record. Never fails.
pub(super) fn read(block: &[u8]) -> Metadata {
    let mut md = Metadata::default();
    let datasets = parse_datasets(block, &mut md.warnings);

    let utf8 = datasets
        .iter()
        .any(|d| d.record == 1 && d.number == 90 && UTF8_ESCAPES.contains(&trim_nul(d.data)));
    let mut invalid_utf8 = false;
    let mut decode = |bytes: &[u8]| -> Option<String> {
        let text = if utf8 {
            String::from_utf8(bytes.to_vec()).unwrap_or_else(|err| {
                invalid_utf8 = true;
                String::from_utf8_lossy(err.as_bytes()).into_owned()
            })
        } else {
            decode_legacy_text(bytes)
        };
        clean_text(&text)
    };
    let all = |number: u8| {
        datasets
            .iter()
            .filter(move |d| d.record == 2 && d.number == number)
            .map(|d| d.data)
    };

    md.title = all(5).find_map(&mut decode);
    md.keywords = all(25).filter_map(&mut decode).collect();
    md.creator = all(80).filter_map(&mut decode).collect();
    md.credit = all(110).find_map(&mut decode);
    md.copyright = all(116).find_map(&mut decode);
    md.caption = all(120).find_map(&mut decode);
    let date = all(55).find_map(&mut decode);
    let time = all(60).find_map(&mut decode);
    if invalid_utf8 {
        md.warnings.push(
            "IPTC-IIM text declared UTF-8 (1:90) is not valid UTF-8; bad bytes replaced".to_owned(),
        );
    }
    if let Some(date) = date {
        md.capture_time = capture_time(&date, time.as_deref(), &mut md.warnings);
    }
    md
}

/// 2:55 DateCreated (`CCYYMMDD`) and 2:60 TimeCreated (`HHMMSS±HHMM`).
fn capture_time(
    date: &str,
    time: Option<&str>,
    warnings: &mut Vec<String>,
) -> Option<super::CaptureTime> {
    let iso_date = match date.as_bytes() {
        [y @ .., m1, m2, d1, d2] if y.len() == 4 && date.is_ascii() => {
            format!(
                "{}-{}{}-{}{}",
                &date[..4],
                char::from(*m1),
                char::from(*m2),
                char::from(*d1),
                char::from(*d2)
            )
        }
        _ => date.to_owned(), // let the parser report it
    };
    let iso_time = time.and_then(|time| {
        let b = time.as_bytes();
        let valid = time.is_ascii()
            && (b.len() == 6 || (b.len() == 11 && matches!(b[6], b'+' | b'-')))
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 6 || c.is_ascii_digit());
        if valid {
            let zone = if b.len() == 11 {
                format!("{}{}:{}", &time[6..7], &time[7..9], &time[9..11])
            } else {
                String::new()
            };
            Some(format!(
                "T{}:{}:{}{zone}",
                &time[0..2],
                &time[2..4],
                &time[4..6]
            ))
        } else {
            warnings.push(format!(
                "IPTC TimeCreated {} is not HHMMSS±HHMM; date used alone",
                super::quote(time)
            ));
            None
        }
    });
    let combined = format!("{iso_date}{}", iso_time.as_deref().unwrap_or(""));
    match stamp_or_warn(&combined, "IPTC DateCreated", warnings) {
        Some(stamp) => Some(stamp.into_capture_time("IPTC DateCreated")),
        // A bad time must not cost the date.
        None if iso_time.is_some() => stamp_or_warn(&iso_date, "IPTC DateCreated", &mut Vec::new())
            .map(|s| s.into_capture_time("IPTC DateCreated")),
        None => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dataset<'a> {
    record: u8,
    number: u8,
    data: &'a [u8],
}

/// Splits the block into datasets, stopping (with a warning) at the first
/// malformed one; trailing NUL padding is ignored.
fn parse_datasets<'a>(block: &'a [u8], warnings: &mut Vec<String>) -> Vec<Dataset<'a>> {
    let mut datasets = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let rest = &block[pos..];
        if rest[0] != MARKER {
            if !rest.iter().all(|&b| b == 0) {
                warnings.push(format!(
                    "malformed IPTC-IIM: unexpected byte 0x{:02X} at offset {pos}; the rest is ignored",
                    rest[0]
                ));
            }
            break;
        }
        let [_, record, number, len_hi, len_lo, ..] = *rest else {
            warnings.push(format!(
                "malformed IPTC-IIM: truncated dataset header at offset {pos}"
            ));
            break;
        };
        let mut header = 5;
        let mut len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if len & 0x8000 != 0 {
            // Extended dataset: the low 15 bits give the size of the length field.
            let size = len & 0x7FFF;
            match rest.get(header..header + size) {
                Some(bytes) if (1..=4).contains(&size) => {
                    len = bytes.iter().fold(0, |n, &b| (n << 8) | usize::from(b));
                    header += size;
                }
                _ => {
                    warnings.push(format!(
                        "malformed IPTC-IIM: bad extended length in dataset {record}:{number}"
                    ));
                    break;
                }
            }
        }
        let Some(data) = rest.get(header..).and_then(|r| r.get(..len)) else {
            warnings.push(format!(
                "malformed IPTC-IIM: dataset {record}:{number} is truncated"
            ));
            break;
        };
        datasets.push(Dataset {
            record,
            number,
            data,
        });
        pos += header + len;
    }
    datasets
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
pub(super) mod tests {
    use super::read;

    /// One IIM dataset, with an extended length field when `data` needs it.
    pub(in crate::pipeline::metadata) fn dataset(record: u8, number: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1C, record, number];
        match u16::try_from(data.len()) {
            Ok(len) if len < 0x8000 => out.extend(len.to_be_bytes()),
            _ => {
                out.extend(0x8004u16.to_be_bytes());
                out.extend(u32::try_from(data.len()).unwrap().to_be_bytes());
            }
        }
        out.extend(data);
        out
    }

    fn block(datasets: &[(u8, u8, &[u8])]) -> Vec<u8> {
        datasets
            .iter()
            .flat_map(|&(r, n, d)| dataset(r, n, d))
            .collect()
    }

    #[test]
    fn descriptive_fields_and_repeated_datasets() {
        let md = read(&block(&[
            (2, 0, &[0, 4]),
            (2, 5, b"Object name"),
            (2, 25, b"one"),
            (2, 25, b"two "),
            (2, 25, b"   "),
            (2, 80, b"Ann"),
            (2, 80, b"Bob"),
            (2, 110, b"Credit line"),
            (2, 116, b"(c) 2024 Ann"),
            (2, 120, b"A caption\r\nwith two lines"),
        ]));
        assert_eq!(md.warnings, Vec::<String>::new());
        assert_eq!(md.title.as_deref(), Some("Object name"));
        assert_eq!(md.keywords, ["one", "two"]);
        assert_eq!(md.creator, ["Ann", "Bob"]);
        assert_eq!(md.credit.as_deref(), Some("Credit line"));
        assert_eq!(md.copyright.as_deref(), Some("(c) 2024 Ann"));
        assert_eq!(md.caption.as_deref(), Some("A caption\r\nwith two lines"));
        assert_eq!(md.capture_time, None);
    }

    #[test]
    fn utf8_declared_by_1_90_escape() {
        let md = read(&block(&[
            (1, 90, b"\x1b%G"),
            (2, 80, "Zoë Ångström".as_bytes()),
            (2, 25, "東京".as_bytes()),
        ]));
        assert_eq!(md.creator, ["Zoë Ångström"]);
        assert_eq!(md.keywords, ["東京"]);
        // Declared UTF-8 but not: replaced, with a warning.
        let md = read(&block(&[(1, 90, b"\x1b%G"), (2, 80, b"Zo\xEB")]));
        assert_eq!(md.creator, ["Zo\u{FFFD}"]);
        assert_eq!(md.warnings.len(), 1);
    }

    #[test]
    fn latin1_without_1_90_and_undeclared_utf8() {
        // Latin-1 / Windows-1252: é, ß, and the euro sign at 0x80.
        let md = read(&block(&[
            (2, 80, b"Ren\xE9 Stra\xDFe"),
            (2, 116, b"\x80 100 \xA9 Ren\xE9"),
        ]));
        assert_eq!(md.creator, ["René Straße"]);
        assert_eq!(md.copyright.as_deref(), Some("€ 100 © René"));
        // UTF-8 written without 1:90, as many tools do.
        let md = read(&block(&[(2, 80, "René".as_bytes())]));
        assert_eq!(md.creator, ["René"]);
    }

    #[test]
    fn date_and_time_created() {
        let md = read(&block(&[(2, 55, b"19920101"), (2, 60, b"021111+0100")]));
        let time = md.capture_time.unwrap();
        assert_eq!(
            (
                time.local.as_str(),
                time.offset.as_deref(),
                time.source.as_str()
            ),
            ("1992-01-01T02:11:11", Some("+01:00"), "IPTC DateCreated")
        );

        let md = read(&block(&[(2, 55, b"20040226")]));
        let time = md.capture_time.unwrap();
        assert_eq!(
            (time.local.as_str(), time.offset, time.source.as_str()),
            ("2004-02-26T00:00:00", None, "IPTC DateCreated (date only)")
        );

        // A broken time keeps the date.
        let md = read(&block(&[(2, 55, b"20040226"), (2, 60, b"2611")]));
        assert_eq!(md.capture_time.unwrap().local, "2004-02-26T00:00:00");
        assert_eq!(md.warnings.len(), 1, "{:?}", md.warnings);
        let md = read(&block(&[(2, 55, b"20040226"), (2, 60, b"256100")]));
        assert_eq!(md.capture_time.unwrap().local, "2004-02-26T00:00:00");
        assert_eq!(md.warnings.len(), 1, "{:?}", md.warnings);

        // IIM allows 00 for an unknown month or day: no capture time, with a note.
        let md = read(&block(&[(2, 55, b"19920000")]));
        assert_eq!(md.capture_time, None);
        assert_eq!(md.warnings.len(), 1, "{:?}", md.warnings);
    }

    #[test]
    fn extended_length_dataset() {
        let long = "x".repeat(40_000);
        let md = read(&block(&[(2, 120, long.as_bytes()), (2, 5, b"after")]));
        assert_eq!(md.caption.as_deref(), Some(long.as_str()));
        assert_eq!(md.title.as_deref(), Some("after"));
        assert!(md.warnings.is_empty(), "{:?}", md.warnings);
    }

    #[test]
    fn damage_is_reported_and_earlier_datasets_kept() {
        let good = block(&[(2, 5, b"title"), (2, 80, b"Ann")]);
        // NUL padding after the last dataset is normal.
        let mut padded = good.clone();
        padded.extend([0; 7]);
        let md = read(&padded);
        assert_eq!((md.title.as_deref(), md.warnings.len()), (Some("title"), 0));

        let mut garbage = good.clone();
        garbage.extend(b"\xFFjunk");
        let md = read(&garbage);
        assert_eq!(md.creator, ["Ann"]);
        assert_eq!(md.warnings.len(), 1);

        let mut truncated = good.clone();
        truncated.extend(dataset(2, 120, b"a caption that was cut"));
        truncated.truncate(truncated.len() - 5);
        let md = read(&truncated);
        assert_eq!(
            (md.title.as_deref(), md.caption.as_deref()),
            (Some("title"), None)
        );
        assert!(
            md.warnings[0].contains("2:120 is truncated"),
            "{:?}",
            md.warnings
        );

        for cut in 0..truncated.len() {
            let _ = read(&truncated[..cut]);
        }
        let _ = read(&[0x1C, 2, 5, 0x80, 0x00]);
        let _ = read(&[0x1C, 2, 5, 0xFF, 0xFF, 1, 2]);
    }
}
