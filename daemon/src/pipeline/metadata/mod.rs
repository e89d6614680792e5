//! Photo metadata: EXIF, XMP and IPTC-IIM read into one [`Metadata`] record.
//!
//! [`read`] takes the raw blocks the container parser found
//! ([`EmbeddedMetadata`]) and never fails: anything it cannot use becomes a
//! sentence in [`Metadata::warnings`]. [`apply_sidecar`] then layers an `.xmp`
//! sidecar file on top. Property names and namespaces follow
//! `shared/design/metadata.md` (ExifTool's XMP, PLUS and MWG tag tables); XMP
//! elements are matched by namespace URI, never by prefix.
//!
//! # Precedence
//!
//! Each source is read on its own into a partial record, and the partial
//! records are layered field by field: a higher layer replaces a field only
//! where it has a value (`Some`, or a non-empty list).
//!
//! ```text
//! IPTC-IIM  <  embedded XMP  <  EXIF  <  XMP sidecar (apply_sidecar)
//! ```
//!
//! Because each source carries only some fields, that gives, first present wins:
//!
//! | field | sources, in order |
//! | --- | --- |
//! | `capture_time` | EXIF DateTimeOriginal (+ OffsetTimeOriginal, SubSecTimeOriginal); EXIF DateTimeDigitized (+ OffsetTimeDigitized, SubSecTimeDigitized); XMP `exif:DateTimeOriginal`; XMP `photoshop:DateCreated`; XMP `xmp:CreateDate`; IIM 2:55 DateCreated + 2:60 TimeCreated |
//! | `camera_make`, `camera_model` | EXIF IFD0 Make/Model; XMP `tiff:Make`/`tiff:Model` |
//! | `gps` | EXIF GPS IFD; XMP `exif:GPSLatitude`/`exif:GPSLongitude` (`"DD,MM.mmmN"`, `"DD,MM,SSN"`) |
//! | `orientation` | EXIF IFD0 Orientation; XMP `tiff:Orientation` |
//! | `caption`, `creator`, `copyright` | EXIF ImageDescription/Artist/Copyright when not blank; XMP `dc:description`/`dc:creator`/`dc:rights`; IIM 2:120/2:80/2:116 |
//! | `title`, `credit`, `keywords` | XMP `dc:title`/`photoshop:Credit`/`dc:subject`; IIM 2:05/2:110/2:25 |
//! | people, releases, regions, licence | XMP only |
//!
//! The descriptive fields follow the MWG 2.0 guidance as ExifTool's MWG module
//! implements it: EXIF, where the field exists there, before XMP, and XMP before
//! IIM. MWG lets IIM win over XMP only when the Photoshop IPTC digest (resource
//! 0x0425) shows the IIM was edited after the XMP was written; that digest is
//! not part of [`EmbeddedMetadata`], so XMP always wins over IIM here (MWG's
//! rule for a file without a digest). An `EXIF:Artist` holding several
//! creators is split at `"; "`, as MWG prescribes.
//!
//! A sidecar is the user's latest word: every field it carries replaces the
//! embedded one, capture time and orientation included.
//!
//! # Text encodings
//!
//! XMP packets may be UTF-8, UTF-16 or UTF-32 (detected from the BOM or the
//! leading `<`). IIM text is UTF-8 when dataset 1:90 says so, or when it is
//! valid UTF-8 anyway; otherwise it is read as Windows-1252 (Latin-1).
//! EXIF ASCII fields are read as UTF-8 (MWG) with the same Latin-1 fallback.
//!
//! # Regions
//!
//! All areas are normalised (0..1), top-left origin, relative to the image as
//! stored (before EXIF orientation). MWG `stArea` gives the centre, which is
//! converted; Microsoft rectangles are already top-left; IPTC
//! `Iptc4xmpExt:ImageRegion` boundaries in pixels, and circles, need the image
//! size: without it ([`read`] rather than [`read_with_image_size`]) their area
//! is `None`. Areas are clipped to the image; an area far outside it is
//! dropped with a warning. Kinds: MWG `Type`; Microsoft people tags are faces;
//! IPTC `rCtype` `…/imageregiontype/human` is a face (that is how consentry
//! exports faces) and `…/animal` a pet. An IPTC region is named by the
//! `PersonInImage` inside it, else by its `Name`. A region with neither a
//! name nor an area is not kept.
//!
//! # Other rules
//!
//! - A date without a time (IIM 2:55 alone, XMP `1988-12-01`) gives midnight
//!   and a `source` ending in ` (date only)`; a year or year-month alone is
//!   not used.
//! - A GPS position of exactly 0, 0 is what receivers without a fix write;
//!   it is dropped with a warning.
//! - XMP is parsed without DTDs, within size, node and complexity limits.

mod exif;
mod iptc;
mod xmp;

use serde::{Deserialize, Serialize};

/// The raw metadata blocks of one image file, as the container parser found them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedMetadata {
    /// TIFF-structured EXIF (starts with "II*\0" or "MM\0*"), without the "Exif\0\0" prefix.
    pub exif: Option<Vec<u8>>,
    /// XMP packets as found (main packet first), raw XML bytes.
    pub xmp: Vec<Vec<u8>>,
    /// Raw IPTC-IIM datasets (the payload of Photoshop resource 0x0404, or TIFF tag 33723).
    pub iptc_iim: Option<Vec<u8>>,
}

/// Everything consentry keeps from a photo's embedded metadata and sidecar.
///
/// Text fields are trimmed; empty values are treated as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub capture_time: Option<CaptureTime>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub gps: Option<Gps>,
    /// EXIF orientation, 1..=8 only.
    pub orientation: Option<u16>,
    pub title: Option<String>,
    pub caption: Option<String>,
    pub creator: Vec<String>,
    pub copyright: Option<String>,
    pub credit: Option<String>,
    pub keywords: Vec<String>,
    /// `Iptc4xmpExt:PersonInImage`.
    pub person_in_image: Vec<String>,
    /// `plus:ModelReleaseStatus` as a short code, e.g. `MR-UMR` (vocabulary URI prefix removed).
    pub model_release_status: Option<String>,
    /// `plus:ModelReleaseID`.
    pub model_release_ids: Vec<String>,
    /// `plus:MinorModelAgeDisclosure`, e.g. `AG-A25`.
    pub minor_model_age: Option<String>,
    /// `plus:PropertyReleaseStatus`, e.g. `PR-NON`.
    pub property_release_status: Option<String>,
    pub regions: Vec<Region>,
    pub licence: LicenceFields,
    /// Non-fatal problems, in words a person can read.
    pub warnings: Vec<String>,
}

/// When the photo was taken, as the camera or the editing tool recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureTime {
    /// Local wall-clock time, `YYYY-MM-DDTHH:MM:SS`, with `.fff` when sub-seconds are known.
    /// A source with a date but no time gives midnight (see `source`).
    pub local: String,
    /// UTC offset of `local`, `+HH:MM` / `-HH:MM`, when recorded.
    pub offset: Option<String>,
    /// The tag it came from, e.g. `EXIF DateTimeOriginal`, `XMP photoshop:DateCreated`,
    /// `IPTC DateCreated`; ` (date only)` is appended when the source had no time of day.
    pub source: String,
}

/// A position in WGS 84.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    /// Decimal degrees, south negative.
    pub latitude: f64,
    /// Decimal degrees, west negative.
    pub longitude: f64,
    /// Metres above sea level; below sea level negative.
    pub altitude_m: Option<f64>,
}

/// A marked area of the image (a face, a pet, a focus point...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub kind: RegionKind,
    /// The person's (or the region's) name, when the region has one.
    pub name: Option<String>,
    /// Where it is; `None` when the file does not say in a usable way.
    pub area: Option<NormalizedRect>,
    pub source: RegionSource,
}

/// What a region marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionKind {
    Face,
    Pet,
    Focus,
    Barcode,
    Other,
}

impl RegionKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RegionKind::Face => "face",
            RegionKind::Pet => "pet",
            RegionKind::Focus => "focus",
            RegionKind::Barcode => "barcode",
            RegionKind::Other => "other",
        }
    }
}

/// The schema a region was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionSource {
    /// `mwg-rs:Regions` (Metadata Working Group).
    Mwg,
    /// `MP:RegionInfo` (Microsoft Photo Gallery / Windows people tags).
    Microsoft,
    /// `Iptc4xmpExt:ImageRegion`.
    Iptc,
}

impl RegionSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RegionSource::Mwg => "mwg",
            RegionSource::Microsoft => "microsoft",
            RegionSource::Iptc => "iptc",
        }
    }
}

/// A rectangle in normalised image coordinates: top-left origin, 0..1 on
/// both axes, relative to the image as stored (before EXIF orientation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormalizedRect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Licensing and rights (XMP rights and PLUS properties).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LicenceFields {
    /// `xmpRights:UsageTerms`.
    pub usage_terms: Option<String>,
    /// `xmpRights:WebStatement`.
    pub web_statement: Option<String>,
    /// `plus:Licensor/plus:LicensorName`.
    pub licensors: Vec<String>,
    /// `plus:LicenseEndDate`, as written.
    pub license_end_date: Option<String>,
    /// `plus:LicenseStartDate`, as written.
    pub license_start_date: Option<String>,
    /// `plus:LicenseID`.
    pub license_id: Option<String>,
    /// `plus:OtherConstraints`.
    pub other_constraints: Option<String>,
    /// `plus:CopyrightOwner/plus:CopyrightOwnerName`.
    pub copyright_owners: Vec<String>,
}

/// Why an XMP sidecar (or packet) could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("the XMP is empty")]
    Empty,
    #[error("the XMP is too large ({size} bytes, the limit is {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("the XMP is not well-formed XML: {0}")]
    Xml(String),
    #[error("no XMP found (no rdf:RDF element)")]
    NoRdf,
    #[error(
        "the XMP is too complex to parse safely (too many attributes or nested namespace declarations)"
    )]
    TooComplex,
}

/// Reads the embedded metadata of one image. Never fails: problems become warnings.
///
/// IPTC image regions given in pixels, and circular ones, get no area; use
/// [`read_with_image_size`] when the stored image size is known.
#[must_use]
pub fn read(embedded: &EmbeddedMetadata) -> Metadata {
    read_with_image_size(embedded, None)
}

/// As [`read`], with the stored (un-oriented) image size in pixels, `(width, height)`,
/// used to convert IPTC image regions given in pixels or as circles.
#[must_use]
pub fn read_with_image_size(
    embedded: &EmbeddedMetadata,
    image_size: Option<(u32, u32)>,
) -> Metadata {
    let image_size = image_size.filter(|&(w, h)| w > 0 && h > 0);

    let from_exif = embedded.exif.as_deref().map(exif::read);

    let mut packet_warnings = Vec::new();
    let mut packets = Vec::with_capacity(embedded.xmp.len());
    for (index, bytes) in embedded.xmp.iter().enumerate() {
        match xmp::Packet::parse(bytes) {
            Ok((packet, warnings)) => {
                packets.push(packet);
                packet_warnings.extend(warnings);
            }
            Err(err) => {
                let which = if embedded.xmp.len() > 1 {
                    format!(" {}", index + 1)
                } else {
                    String::new()
                };
                packet_warnings.push(format!("unparsable XMP packet{which}: {err}"));
            }
        }
    }
    let mut from_xmp =
        xmp::Packet::merge_all(packets).map(|packet| xmp::extract(&packet, image_size, "XMP"));
    if !packet_warnings.is_empty() {
        let layer = from_xmp.get_or_insert_with(Metadata::default);
        packet_warnings.append(&mut layer.warnings);
        layer.warnings = packet_warnings;
    }

    let from_iim = embedded.iptc_iim.as_deref().map(iptc::read);

    // Lowest layer first; warnings are listed highest first.
    let layers = [from_iim, from_xmp, from_exif];
    let mut md = Metadata {
        warnings: layers
            .iter()
            .rev()
            .flatten()
            .flat_map(|layer| layer.warnings.iter().cloned())
            .collect(),
        ..Metadata::default()
    };
    for layer in layers.into_iter().flatten() {
        md.overlay(layer);
    }
    md
}

/// Applies an `.xmp` sidecar: each field the sidecar has replaces the embedded one.
///
/// Smaller problems are added to `md.warnings` (starting with `sidecar`).
///
/// # Errors
///
/// When the sidecar is not usable XMP at all (empty, too large or complex,
/// not well-formed XML, no `rdf:RDF`); `md` is then left untouched.
pub fn apply_sidecar(md: &mut Metadata, xmp: &[u8]) -> Result<(), MetadataError> {
    apply_sidecar_with_image_size(md, xmp, None)
}

/// As [`apply_sidecar`], with the stored image size (see [`read_with_image_size`]).
///
/// # Errors
///
/// As [`apply_sidecar`].
pub fn apply_sidecar_with_image_size(
    md: &mut Metadata,
    xmp: &[u8],
    image_size: Option<(u32, u32)>,
) -> Result<(), MetadataError> {
    let image_size = image_size.filter(|&(w, h)| w > 0 && h > 0);
    let (packet, packet_warnings) = xmp::Packet::parse(xmp)?;
    let mut layer = xmp::extract(&packet, image_size, "sidecar XMP");
    let mut warnings: Vec<String> = packet_warnings
        .into_iter()
        .map(|w| format!("sidecar: {w}"))
        .collect();
    warnings.append(&mut layer.warnings);
    md.overlay(layer);
    md.warnings.extend(warnings);
    Ok(())
}

impl Metadata {
    /// Replaces every field `top` has a value for; leaves `warnings` alone.
    fn overlay(&mut self, top: Metadata) {
        // Destructured so that a new field cannot be forgotten here.
        let Metadata {
            capture_time,
            camera_make,
            camera_model,
            gps,
            orientation,
            title,
            caption,
            creator,
            copyright,
            credit,
            keywords,
            person_in_image,
            model_release_status,
            model_release_ids,
            minor_model_age,
            property_release_status,
            regions,
            licence,
            warnings: _,
        } = top;
        replace_some(&mut self.capture_time, capture_time);
        replace_some(&mut self.camera_make, camera_make);
        replace_some(&mut self.camera_model, camera_model);
        replace_some(&mut self.gps, gps);
        replace_some(&mut self.orientation, orientation);
        replace_some(&mut self.title, title);
        replace_some(&mut self.caption, caption);
        replace_non_empty(&mut self.creator, creator);
        replace_some(&mut self.copyright, copyright);
        replace_some(&mut self.credit, credit);
        replace_non_empty(&mut self.keywords, keywords);
        replace_non_empty(&mut self.person_in_image, person_in_image);
        replace_some(&mut self.model_release_status, model_release_status);
        replace_non_empty(&mut self.model_release_ids, model_release_ids);
        replace_some(&mut self.minor_model_age, minor_model_age);
        replace_some(&mut self.property_release_status, property_release_status);
        replace_non_empty(&mut self.regions, regions);
        self.licence.overlay(licence);
    }
}

impl LicenceFields {
    fn overlay(&mut self, top: LicenceFields) {
        let LicenceFields {
            usage_terms,
            web_statement,
            licensors,
            license_end_date,
            license_start_date,
            license_id,
            other_constraints,
            copyright_owners,
        } = top;
        replace_some(&mut self.usage_terms, usage_terms);
        replace_some(&mut self.web_statement, web_statement);
        replace_non_empty(&mut self.licensors, licensors);
        replace_some(&mut self.license_end_date, license_end_date);
        replace_some(&mut self.license_start_date, license_start_date);
        replace_some(&mut self.license_id, license_id);
        replace_some(&mut self.other_constraints, other_constraints);
        replace_non_empty(&mut self.copyright_owners, copyright_owners);
    }
}

fn replace_some<T>(dst: &mut Option<T>, src: Option<T>) {
    if src.is_some() {
        *dst = src;
    }
}

fn replace_non_empty<T>(dst: &mut Vec<T>, src: Vec<T>) {
    if !src.is_empty() {
        *dst = src;
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the source readers.

/// Longest raw value quoted in a warning, in characters.
const QUOTE_LIMIT: usize = 80;

/// A raw value for a warning: quoted, escaped and cut to a readable length.
fn quote(raw: &str) -> String {
    let mut cut: String = raw.chars().take(QUOTE_LIMIT).collect();
    if cut.len() < raw.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Trims whitespace and NULs; `None` when nothing is left.
fn clean_text(raw: &str) -> Option<String> {
    let text = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_owned())
}

/// Decodes 8-bit text of unknown encoding: UTF-8 when it is valid UTF-8,
/// otherwise Windows-1252 (a superset of the printable Latin-1).
fn decode_legacy_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => decode_cp1252(bytes),
    }
}

fn decode_cp1252(bytes: &[u8]) -> String {
    // 0x80..=0x9F; the five undefined positions map to the C1 controls, as in
    // the WHATWG decoder.
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}',
        '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Splits an MWG list stored in one string (`EXIF:Artist`): values separated
/// by `;`, a value in double quotes when it contains one (`""` for a quote).
fn split_mwg_list(raw: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.next_if_eq(&'"').is_some() {
                        value.push('"');
                    } else {
                        break;
                    }
                } else {
                    value.push(c);
                }
            }
            // Anything between the closing quote and the separator is kept.
            while let Some(c) = chars.next_if(|&c| c != ';') {
                value.push(c);
            }
        } else {
            while let Some(c) = chars.next_if(|&c| c != ';') {
                value.push(c);
            }
        }
        if let Some(value) = clean_text(&value) {
            values.push(value);
        }
        if chars.next().is_none() {
            break;
        }
    }
    values
}

/// An orientation value, if it is one of the eight EXIF orientations.
fn checked_orientation(value: i64, source: &str, warnings: &mut Vec<String>) -> Option<u16> {
    match u16::try_from(value) {
        Ok(v @ 1..=8) => Some(v),
        _ => {
            warnings.push(format!(
                "{source} {value} is not one of the EXIF orientations 1–8; ignored"
            ));
            None
        }
    }
}

/// A GPS position, if it is a plausible one.
fn checked_gps(
    latitude: f64,
    longitude: f64,
    altitude_m: Option<f64>,
    source: &str,
    warnings: &mut Vec<String>,
) -> Option<Gps> {
    if !(latitude.is_finite()
        && longitude.is_finite()
        && latitude.abs() <= 90.0
        && longitude.abs() <= 180.0)
    {
        warnings.push(format!(
            "{source} position {latitude}, {longitude} is out of range; ignored"
        ));
        return None;
    }
    if latitude == 0.0 && longitude == 0.0 {
        // What receivers without a fix write; nobody photographs 0°N 0°E on purpose.
        warnings.push(format!(
            "{source} position is exactly 0, 0 (no fix); ignored"
        ));
        return None;
    }
    let altitude_m = altitude_m.filter(|a| a.is_finite());
    Some(Gps {
        latitude,
        longitude,
        altitude_m,
    })
}

/// A date and time as written in one of the metadata formats.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    year: u32,
    month: u32,
    day: u32,
    /// Hours, minutes, seconds; `None` for a date without a time.
    time: Option<(u32, u32, u32)>,
    /// Digits of the fraction of a second, as written.
    fraction: Option<String>,
    /// `+HH:MM` / `-HH:MM`.
    offset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StampParse {
    /// Empty, blanks or zeros: the writer had no value.
    Blank,
    /// A year, or a year and a month, only.
    Partial,
    Invalid,
    Valid(Stamp),
}

/// Parses the date-time forms of EXIF (`YYYY:MM:DD HH:MM:SS`) and XMP / ISO
/// 8601 (`YYYY[-MM[-DD[Thh:mm[:ss[.s+]][TZD]]]]`), leniently about the
/// separators.
fn parse_stamp(raw: &str) -> StampParse {
    let text = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text
        .bytes()
        .all(|b| matches!(b, b'0' | b':' | b'-' | b' ' | b'T' | b'.'))
    {
        return StampParse::Blank;
    }
    let mut cur = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let Some(year) = cur.number(4) else {
        return StampParse::Invalid;
    };
    if cur.done() {
        return StampParse::Partial;
    }
    if !cur.eat_any(b"-:") {
        return StampParse::Invalid;
    }
    let Some(month) = cur.number(2) else {
        return StampParse::Invalid;
    };
    if cur.done() {
        return StampParse::Partial;
    }
    if !cur.eat_any(b"-:") {
        return StampParse::Invalid;
    }
    let Some(day) = cur.number(2) else {
        return StampParse::Invalid;
    };
    let mut stamp = Stamp {
        year,
        month,
        day,
        time: None,
        fraction: None,
        offset: None,
    };
    if !cur.done() {
        if !cur.eat_any(b"T ") {
            return StampParse::Invalid;
        }
        let Some(hour) = cur.number(2) else {
            return StampParse::Invalid;
        };
        if !cur.eat_any(b":") {
            return StampParse::Invalid;
        }
        let Some(minute) = cur.number(2) else {
            return StampParse::Invalid;
        };
        let second = if cur.eat_any(b":") {
            let Some(second) = cur.number(2) else {
                return StampParse::Invalid;
            };
            second
        } else {
            0
        };
        if cur.eat_any(b".,") {
            let digits = cur.digits();
            if digits.is_empty() {
                return StampParse::Invalid;
            }
            stamp.fraction = Some(digits.to_owned());
        }
        let rest = std::str::from_utf8(cur.rest()).unwrap_or_default();
        match parse_offset(rest) {
            Ok(offset) => stamp.offset = offset,
            Err(()) => return StampParse::Invalid,
        }
        stamp.time = Some((hour, minute, second));
    }
    if stamp.is_valid() {
        StampParse::Valid(stamp)
    } else {
        StampParse::Invalid
    }
}

/// Parses a UTC offset: `Z`, `±HH:MM`, `±HHMM` or `±HH`. Blank gives `Ok(None)`.
fn parse_offset(raw: &str) -> Result<Option<String>, ()> {
    let text = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.bytes().all(|b| matches!(b, b' ' | b':')) {
        return Ok(None);
    }
    if text.eq_ignore_ascii_case("z") {
        return Ok(Some("+00:00".to_owned()));
    }
    let mut cur = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let sign = if cur.eat_any(b"+") {
        '+'
    } else if cur.eat_any(b"-") {
        '-'
    } else {
        return Err(());
    };
    let hours = cur.number(2).ok_or(())?;
    let minutes = if cur.done() {
        0
    } else {
        cur.eat_any(b":");
        cur.number(2).ok_or(())?
    };
    if !cur.done() || hours > 23 || minutes > 59 {
        return Err(());
    }
    Ok(Some(format!("{sign}{hours:02}:{minutes:02}")))
}

/// Parses a date-time and reports why it cannot be used.
fn stamp_or_warn(raw: &str, source: &str, warnings: &mut Vec<String>) -> Option<Stamp> {
    match parse_stamp(raw) {
        StampParse::Blank => None,
        StampParse::Valid(stamp) => Some(stamp),
        StampParse::Partial => {
            warnings.push(format!(
                "{source} {} has no day; not used as capture time",
                quote(raw)
            ));
            None
        }
        StampParse::Invalid => {
            // Some writers append junk to an otherwise valid stamp
            // ("2009:09:09 20:27:09.60:04:00"); keep the date and time, as ExifTool does.
            let head = raw.trim_start().get(..19);
            if let Some(StampParse::Valid(stamp)) = head.map(parse_stamp) {
                warnings.push(format!(
                    "{source} {} has trailing characters; read as {}",
                    quote(raw),
                    quote(head.unwrap_or_default())
                ));
                return Some(stamp);
            }
            warnings.push(format!(
                "{source} {} is not a valid date and time; ignored",
                quote(raw)
            ));
            None
        }
    }
}

#[cfg(test)]
mod stamp_tests {
    #[test]
    fn trailing_junk_after_a_valid_stamp_keeps_the_date_and_time() {
        let mut warnings = Vec::new();
        let stamp = super::stamp_or_warn(
            "2009:09:09 20:27:09.60:04:00",
            "EXIF DateTimeOriginal",
            &mut warnings,
        )
        .unwrap();
        assert_eq!(
            (stamp.year, stamp.month, stamp.day, stamp.time),
            (2009, 9, 9, Some((20, 27, 9)))
        );
        assert!(warnings[0].contains("trailing characters"), "{warnings:?}");
        assert!(
            super::stamp_or_warn("2011:02:30 09:59:48", "x", &mut warnings).is_none(),
            "an impossible date stays refused"
        );
    }
}

impl Stamp {
    fn is_valid(&self) -> bool {
        let leap = (self.year.is_multiple_of(4) && !self.year.is_multiple_of(100))
            || self.year.is_multiple_of(400);
        let days = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        let time_ok = self.time.is_none_or(|(h, m, s)| h < 24 && m < 60 && s < 60);
        self.year > 0 && (1..=days).contains(&self.day) && time_ok
    }

    fn into_capture_time(self, source: &str) -> CaptureTime {
        let date = format!("{:04}-{:02}-{:02}", self.year, self.month, self.day);
        match self.time {
            Some((h, m, s)) => {
                let mut local = format!("{date}T{h:02}:{m:02}:{s:02}");
                if let Some(fraction) = &self.fraction {
                    local.push('.');
                    local.extend(fraction.chars().chain(std::iter::repeat('0')).take(3));
                }
                CaptureTime {
                    local,
                    offset: self.offset,
                    source: source.to_owned(),
                }
            }
            None => CaptureTime {
                local: format!("{date}T00:00:00"),
                offset: None,
                source: format!("{source} (date only)"),
            },
        }
    }
}

/// A byte cursor for the small text formats above.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos.min(self.bytes.len())..]
    }

    fn eat_any(&mut self, set: &[u8]) -> bool {
        match self.bytes.get(self.pos) {
            Some(b) if set.contains(b) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Exactly `width` ASCII digits.
    fn number(&mut self, width: usize) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.pos += width;
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    }

    /// The run of ASCII digits at the cursor (possibly empty).
    fn digits(&mut self) -> &'a str {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::exif::tests::{E, V, dms, tiff};
    use super::iptc::tests::dataset;
    use super::*;

    fn stamp(raw: &str) -> Option<(String, Option<String>, String)> {
        match parse_stamp(raw) {
            StampParse::Valid(s) => {
                let t = s.into_capture_time("S");
                Some((t.local, t.offset, t.source))
            }
            _ => None,
        }
    }

    #[test]
    fn date_time_forms() {
        let full = |local: &str, offset: Option<&str>| {
            Some((local.to_owned(), offset.map(str::to_owned), "S".to_owned()))
        };
        assert_eq!(
            stamp("2008:05:30 15:56:01"),
            full("2008-05-30T15:56:01", None)
        );
        assert_eq!(
            stamp("2008-05-30T15:56:01.5+02:00"),
            full("2008-05-30T15:56:01.500", Some("+02:00"))
        );
        assert_eq!(
            stamp("2008-05-30T15:56:01.123456Z"),
            full("2008-05-30T15:56:01.123", Some("+00:00"))
        );
        assert_eq!(
            stamp("2008-05-30T15:56-0530"),
            full("2008-05-30T15:56:00", Some("-05:30"))
        );
        assert_eq!(
            stamp(" 2008:05:30 15:56:01\0"),
            full("2008-05-30T15:56:01", None)
        );
        assert_eq!(
            stamp("2024-02-29"),
            Some((
                "2024-02-29T00:00:00".to_owned(),
                None,
                "S (date only)".to_owned()
            ))
        );
        for blank in ["", "0000:00:00 00:00:00", "    :  :     :  :  "] {
            assert_eq!(parse_stamp(blank), StampParse::Blank, "{blank:?}");
        }
        for partial in ["1988", "1988-12"] {
            assert_eq!(parse_stamp(partial), StampParse::Partial, "{partial:?}");
        }
        for invalid in [
            "2023-02-29",
            "2008:13:01",
            "2008:05:30 24:00:00",
            "2008:05:30 12:60",
            "2008/05/30",
            "2008:05:30 15:56:01 junk",
            "20080530",
            "2008-05-30T15:56:01+25:00",
        ] {
            assert_eq!(parse_stamp(invalid), StampParse::Invalid, "{invalid:?}");
        }
    }

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_offset("+02:00"), Ok(Some("+02:00".to_owned())));
        assert_eq!(parse_offset("-0330"), Ok(Some("-03:30".to_owned())));
        assert_eq!(parse_offset("+05"), Ok(Some("+05:00".to_owned())));
        assert_eq!(parse_offset("Z"), Ok(Some("+00:00".to_owned())));
        assert_eq!(parse_offset("   :  "), Ok(None));
        assert_eq!(parse_offset("02:00"), Err(()));
        assert_eq!(parse_offset("+2:00"), Err(()));
    }

    #[test]
    fn mwg_lists_and_legacy_text() {
        assert_eq!(split_mwg_list("Ann"), ["Ann"]);
        assert_eq!(
            split_mwg_list("RIGHT1of2; RIGHT2of2"),
            ["RIGHT1of2", "RIGHT2of2"]
        );
        assert_eq!(
            split_mwg_list(r#""Doe; John"; "Say ""hi"""; ;"#),
            ["Doe; John", "Say \"hi\""]
        );
        assert_eq!(decode_legacy_text(b"caf\xE9 \x80 \x93q\x94"), "café € “q”");
        assert_eq!(decode_legacy_text("café".as_bytes()), "café");
    }

    fn xmp_packet(body: &str) -> Vec<u8> {
        format!(
            r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
            <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
              xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
              xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"
              xmlns:MP="http://ns.microsoft.com/photo/1.2/" xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">
            {body}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"#
        )
        .into_bytes()
    }

    fn embedded(
        exif: &[E],
        exif_ifd: &[E],
        gps: &[E],
        xmp: &str,
        iim: &[(u8, u8, &[u8])],
    ) -> EmbeddedMetadata {
        EmbeddedMetadata {
            exif: Some(tiff(true, exif, exif_ifd, gps)),
            xmp: vec![xmp_packet(xmp)],
            iptc_iim: Some(iim.iter().flat_map(|&(r, n, d)| dataset(r, n, d)).collect()),
        }
    }

    #[test]
    fn exif_over_xmp_over_iim() {
        let md = read(&embedded(
            &[
                (0x010F, V::Ascii("EXIF make")),
                (0x010E, V::Ascii("EXIF caption")),
            ],
            &[(0x9003, V::Ascii("2001:01:01 01:11:11"))],
            &[],
            r#"<tiff:Make>XMP make</tiff:Make><tiff:Model>XMP model</tiff:Model>
               <photoshop:DateCreated>1993-01-01T03:11:11+01:00</photoshop:DateCreated>
               <dc:description><rdf:Alt><rdf:li xml:lang="x-default">XMP caption</rdf:li></rdf:Alt></dc:description>
               <dc:subject><rdf:Bag><rdf:li>XMP keyword</rdf:li></rdf:Bag></dc:subject>
               <dc:creator><rdf:Seq><rdf:li>XMP creator</rdf:li></rdf:Seq></dc:creator>
               <exif:GPSLatitude>45,30.0N</exif:GPSLatitude><exif:GPSLongitude>9,6.6E</exif:GPSLongitude>"#,
            &[
                (2, 5, b"IIM title"),
                (2, 25, b"IIM keyword"),
                (2, 80, b"IIM creator"),
                (2, 120, b"IIM caption"),
                (2, 55, b"19920101"),
            ],
        ));
        assert_eq!(md.warnings, Vec::<String>::new());
        let time = md.capture_time.as_ref().unwrap();
        assert_eq!(
            (time.local.as_str(), time.source.as_str()),
            ("2001-01-01T01:11:11", "EXIF DateTimeOriginal")
        );
        assert_eq!(md.camera_make.as_deref(), Some("EXIF make"));
        assert_eq!(
            md.camera_model.as_deref(),
            Some("XMP model"),
            "XMP fills what EXIF lacks"
        );
        assert_eq!(
            md.caption.as_deref(),
            Some("EXIF caption"),
            "MWG: EXIF ImageDescription first"
        );
        assert_eq!(md.keywords, ["XMP keyword"]);
        assert_eq!(md.creator, ["XMP creator"]);
        assert_eq!(
            md.title.as_deref(),
            Some("IIM title"),
            "IIM fills what XMP lacks"
        );
        let gps = md.gps.unwrap();
        assert!((gps.latitude - 45.5).abs() < 1e-9 && (gps.longitude - 9.11).abs() < 1e-9);
    }

    #[test]
    fn capture_time_falls_through_the_sources() {
        let xmp_only = read(&embedded(
            &[],
            &[],
            &[],
            "<xmp:CreateDate>2002-02-02T02:02:02Z</xmp:CreateDate>",
            &[(2, 55, b"19920101")],
        ));
        assert_eq!(xmp_only.capture_time.unwrap().source, "XMP xmp:CreateDate");
        let iim_only = read(&embedded(
            &[],
            &[],
            &[],
            "",
            &[(2, 55, b"19920101"), (2, 60, b"021111-0500")],
        ));
        let time = iim_only.capture_time.unwrap();
        assert_eq!(
            (
                time.local.as_str(),
                time.offset.as_deref(),
                time.source.as_str()
            ),
            ("1992-01-01T02:11:11", Some("-05:00"), "IPTC DateCreated")
        );
        // EXIF DateTimeDigitized still beats XMP.
        let digitized = read(&embedded(
            &[],
            &[(0x9004, V::Ascii("2010:10:10 10:10:10"))],
            &[],
            "<exif:DateTimeOriginal>2009-09-09T09:09:09</exif:DateTimeOriginal>",
            &[],
        ));
        assert_eq!(
            digitized.capture_time.unwrap().source,
            "EXIF DateTimeDigitized"
        );
    }

    #[test]
    fn exif_gps_beats_xmp_gps() {
        let md = read(&embedded(
            &[],
            &[],
            &[
                (0x0001, V::Ascii("S")),
                (0x0002, dms(10, 0, 0, 1)),
                (0x0003, V::Ascii("W")),
                (0x0004, dms(20, 0, 0, 1)),
            ],
            "<exif:GPSLatitude>45,30.0N</exif:GPSLatitude><exif:GPSLongitude>9,6.6E</exif:GPSLongitude>",
            &[],
        ));
        assert_eq!(
            md.gps,
            Some(Gps {
                latitude: -10.0,
                longitude: -20.0,
                altitude_m: None
            })
        );
    }

    #[test]
    fn damaged_blocks_become_warnings_in_source_order() {
        let md = read(&EmbeddedMetadata {
            exif: Some(b"MM\0*\0\0\0\x08\0\x05".to_vec()),
            xmp: vec![b"<x:xmpmeta><rdf:RDF".to_vec()],
            iptc_iim: Some(b"\x1c\x02\x05\x00\x10short".to_vec()),
        });
        assert_eq!(md.warnings.len(), 3, "{:?}", md.warnings);
        assert!(
            md.warnings[0].starts_with("malformed EXIF: "),
            "{:?}",
            md.warnings
        );
        assert!(
            md.warnings[1].starts_with("unparsable XMP packet: the XMP is not well-formed XML: "),
            "{:?}",
            md.warnings
        );
        assert!(
            md.warnings[2].starts_with("malformed IPTC-IIM: "),
            "{:?}",
            md.warnings
        );
        assert_eq!(
            Metadata {
                warnings: Vec::new(),
                ..md
            },
            Metadata::default()
        );
    }

    #[test]
    fn later_packets_fill_gaps_and_bad_ones_are_named() {
        let md = read(&EmbeddedMetadata {
            exif: None,
            xmp: vec![
                xmp_packet("<photoshop:Credit>main</photoshop:Credit>"),
                b"garbage".to_vec(),
                xmp_packet(
                    "<photoshop:Credit>extended</photoshop:Credit><tiff:Make>from extended</tiff:Make>",
                ),
            ],
            iptc_iim: None,
        });
        assert_eq!(md.credit.as_deref(), Some("main"));
        assert_eq!(md.camera_make.as_deref(), Some("from extended"));
        assert_eq!(md.warnings.len(), 1);
        assert!(
            md.warnings[0].starts_with("unparsable XMP packet 2: "),
            "{:?}",
            md.warnings
        );
    }

    #[test]
    fn sidecar_wins_field_by_field() {
        let mut md = read(&embedded(
            &[(0x010F, V::Ascii("Canon")), (0x0112, V::Short(6))],
            &[(0x9003, V::Ascii("2001:01:01 01:11:11"))],
            &[],
            r#"<dc:subject><rdf:Bag><rdf:li>embedded</rdf:li></rdf:Bag></dc:subject>
               <xmpRights:UsageTerms>embedded terms</xmpRights:UsageTerms><xmpRights:WebStatement>https://example.com/embedded</xmpRights:WebStatement>
               <MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag><rdf:li MPReg:PersonDisplayName="Embedded person"/></rdf:Bag></MPRI:Regions></MP:RegionInfo>"#,
            &[(2, 80, b"IIM creator")],
        ));
        let sidecar = xmp_packet(
            r#"<dc:subject><rdf:Bag><rdf:li>sidecar one</rdf:li><rdf:li>sidecar two</rdf:li></rdf:Bag></dc:subject>
               <photoshop:DateCreated>2020-06-01T12:00:00+02:00</photoshop:DateCreated><tiff:Orientation>1</tiff:Orientation>
               <xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="x-default">sidecar terms</rdf:li></rdf:Alt></xmpRights:UsageTerms>
               <plus:ModelReleaseStatus>http://ns.useplus.org/ldf/vocab/MR-NON</plus:ModelReleaseStatus>
               <exif:GPSLatitude>91,0N</exif:GPSLatitude><exif:GPSLongitude>0,0E</exif:GPSLongitude>"#,
        );
        apply_sidecar(&mut md, &sidecar).unwrap();
        assert_eq!(md.keywords, ["sidecar one", "sidecar two"]);
        let time = md.capture_time.as_ref().unwrap();
        assert_eq!(
            (time.local.as_str(), time.source.as_str()),
            ("2020-06-01T12:00:00", "sidecar XMP photoshop:DateCreated")
        );
        assert_eq!(md.orientation, Some(1));
        assert_eq!(md.model_release_status.as_deref(), Some("MR-NON"));
        assert_eq!(md.licence.usage_terms.as_deref(), Some("sidecar terms"));
        // What the sidecar does not have stays.
        assert_eq!(md.camera_make.as_deref(), Some("Canon"));
        assert_eq!(md.creator, ["IIM creator"]);
        assert_eq!(
            md.licence.web_statement.as_deref(),
            Some("https://example.com/embedded")
        );
        assert_eq!(md.regions.len(), 1);
        assert_eq!(md.regions[0].name.as_deref(), Some("Embedded person"));
        // The sidecar's own problems are labelled.
        assert_eq!(md.gps, None);
        assert_eq!(md.warnings.len(), 1);
        assert!(
            md.warnings[0].starts_with("sidecar XMP GPS position"),
            "{:?}",
            md.warnings
        );
    }

    #[test]
    fn an_unusable_sidecar_is_an_error_and_changes_nothing() {
        let before = read(&embedded(&[(0x010F, V::Ascii("Canon"))], &[], &[], "", &[]));
        for (bytes, expected) in [
            (b"".as_slice(), "the XMP is empty"),
            (
                b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>".as_slice(),
                "no XMP found (no rdf:RDF element)",
            ),
        ] {
            let mut md = before.clone();
            let err = apply_sidecar(&mut md, bytes).unwrap_err();
            assert_eq!(err.to_string(), expected);
            assert_eq!(md, before);
        }
        let mut md = before.clone();
        let err = apply_sidecar(&mut md, b"<x:xmpmeta><rdf:RDF></x:xmpmeta>").unwrap_err();
        assert!(matches!(err, MetadataError::Xml(_)));
        assert!(
            err.to_string()
                .starts_with("the XMP is not well-formed XML: "),
            "{err}"
        );
        assert_eq!(md, before);
        let huge = vec![b' '; xmp::MAX_PACKET_BYTES + 1];
        assert!(matches!(
            apply_sidecar(&mut md, &huge),
            Err(MetadataError::TooLarge { .. })
        ));
    }

    #[test]
    fn iptc_pixel_regions_use_the_image_size_when_given() {
        let xmp = r#"<Iptc4xmpExt:ImageRegion xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"><rdf:Bag><rdf:li rdf:parseType="Resource">
              <Iptc4xmpExt:RegionBoundary Iptc4xmpExt:rbShape="rectangle" Iptc4xmpExt:rbUnit="pixel" Iptc4xmpExt:rbX="100" Iptc4xmpExt:rbY="50" Iptc4xmpExt:rbW="200" Iptc4xmpExt:rbH="100"/>
            </rdf:li></rdf:Bag></Iptc4xmpExt:ImageRegion>"#;
        let blocks = EmbeddedMetadata {
            xmp: vec![xmp_packet(xmp)],
            ..EmbeddedMetadata::default()
        };
        assert_eq!(
            read(&blocks).regions.len(),
            0,
            "no area, no name: nothing to keep"
        );
        let sized = read_with_image_size(&blocks, Some((1000, 500)));
        assert_eq!(
            sized.regions[0].area,
            Some(NormalizedRect {
                x: 0.1,
                y: 0.1,
                w: 0.2,
                h: 0.2
            })
        );
        let mut md = Metadata::default();
        apply_sidecar_with_image_size(&mut md, &xmp_packet(xmp), Some((1000, 500))).unwrap();
        assert_eq!(md.regions, sized.regions);
    }

    /// Damaged and random input never panics (a small deterministic fuzz).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = embedded(
            &[(0x010F, V::Ascii("Canon")), (0x0112, V::Short(6))],
            &[
                (0x9003, V::Ascii("2001:01:01 01:11:11")),
                (0x9291, V::Ascii("12")),
            ],
            &[
                (0x0001, V::Ascii("N")),
                (0x0002, dms(10, 0, 0, 1)),
                (0x0003, V::Ascii("E")),
                (0x0004, dms(20, 0, 0, 1)),
            ],
            r#"<dc:subject><rdf:Bag><rdf:li>kw</rdf:li></rdf:Bag></dc:subject><exif:GPSLatitude>45,30.0N</exif:GPSLatitude>"#,
            &[
                (1, 90, b"\x1b%G"),
                (2, 25, b"kw"),
                (2, 55, b"19920101"),
                (2, 60, b"021111+0100"),
            ],
        );
        let mutate = |bytes: &[u8], next: &mut dyn FnMut() -> u64| -> Vec<u8> {
            let mut out = bytes.to_vec();
            for _ in 0..1 + next() % 8 {
                if out.is_empty() {
                    break;
                }
                let at = (next() % out.len() as u64) as usize;
                match next() % 3 {
                    0 => out[at] = next() as u8,
                    1 => out.truncate(at),
                    _ => out.insert(at, next() as u8),
                }
            }
            out
        };
        for _ in 0..3000 {
            let blocks = EmbeddedMetadata {
                exif: seeds.exif.as_deref().map(|b| mutate(b, &mut next)),
                xmp: seeds.xmp.iter().map(|b| mutate(b, &mut next)).collect(),
                iptc_iim: seeds.iptc_iim.as_deref().map(|b| mutate(b, &mut next)),
            };
            let mut md = read(&blocks);
            let _ = apply_sidecar(&mut md, &blocks.xmp[0]);
        }
    }
}

/// The shared test data (`../shared/testdata/metadata`) read by us and by ExifTool.
///
/// ExifTool is run three times over all files: `-j -b -EXIF -XMP -IPTC` gives
/// the raw blocks (base64) that the container parser would hand us;
/// `-j -n -G1 -struct` gives every tag by group; `-j -n -G1 -use MWG -MWG:...`
/// gives ExifTool's MWG reconciliation of the descriptive fields.
#[cfg(test)]
mod testdata {
    use std::collections::BTreeMap;
    use std::fmt::Debug;
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::*;

    const BLOCK_ARGS: &[&str] = &["-j", "-b", "-EXIF", "-XMP", "-IPTC"];
    const TAG_ARGS: &[&str] = &["-j", "-n", "-G1", "-struct"];
    const MWG_ARGS: &[&str] = &[
        "-j",
        "-n",
        "-G1",
        "-use",
        "MWG",
        "-MWG:Creator",
        "-MWG:Description",
        "-MWG:Copyright",
        "-MWG:Keywords",
    ];

    /// Written past the test harness's output capture, so that a skip shows.
    fn notice(message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    }

    fn required() -> bool {
        std::env::var("CONSENTRY_REQUIRE_TESTDATA").is_ok_and(|v| v == "1")
    }

    /// The `metadata/` folder, or `None` (said visibly) when the test cannot
    /// run; `only` names the one file a test uses, if it uses one.
    fn metadata_dir(only: Option<&str>) -> Option<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata");
        if !root.is_dir() {
            assert!(
                !required(),
                "../shared/testdata not found ({}) and CONSENTRY_REQUIRE_TESTDATA=1",
                root.display()
            );
            notice("skipped: ../shared/testdata not found");
            return None;
        }
        let dir = root.join("metadata");
        if !Command::new("exiftool")
            .arg("-ver")
            .output()
            .is_ok_and(|out| out.status.success())
        {
            assert!(
                !required(),
                "exiftool not found (Debian: libimage-exiftool-perl) and CONSENTRY_REQUIRE_TESTDATA=1"
            );
            let skipped: Vec<String> = match only {
                Some(name) => vec![name.to_owned()],
                None => files(&dir)
                    .iter()
                    .map(|f| {
                        f.strip_prefix(&dir)
                            .unwrap_or(f)
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect(),
            };
            notice(&format!(
                "skipped: exiftool not found; {} file(s) in {} not compared with ExifTool: {}",
                skipped.len(),
                dir.display(),
                skipped.join(", ")
            ));
            return None;
        }
        Some(dir)
    }

    /// All files below `dir`, sorted.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    pending.push(path)
                } else {
                    out.push(path)
                }
            }
        }
        out.sort();
        out
    }

    fn is_sidecar(path: &Path) -> bool {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xmp"))
    }

    /// Runs ExifTool over `files`; its JSON objects by `SourceFile`.
    fn exiftool(args: &[&str], files: &[PathBuf]) -> BTreeMap<String, Json> {
        let out = Command::new("exiftool")
            .args(args)
            .args(files)
            .output()
            .expect("exiftool runs");
        let text = String::from_utf8(out.stdout).expect("exiftool -j writes UTF-8");
        let Json::Arr(objects) = Json::parse(&text) else {
            panic!("exiftool -j did not give an array: {text}")
        };
        objects
            .into_iter()
            .map(|o| (o.text("SourceFile").expect("SourceFile"), o))
            .collect()
    }

    /// The blocks the container parser would find, from `exiftool -b`.
    fn embedded_blocks(path: &Path, blocks: &Json) -> EmbeddedMetadata {
        let binary = |key: &str| match blocks.get(key) {
            Some(Json::Str(s)) => Some(match s.strip_prefix("base64:") {
                Some(b64) => base64(b64),
                None => s.clone().into_bytes(),
            }),
            _ => None,
        };
        // A TIFF file is its own EXIF block (exiftool -EXIF gives nothing for it).
        let exif = binary("EXIF").or_else(|| {
            let bytes = std::fs::read(path).expect("readable test file");
            (bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*")).then_some(bytes)
        });
        EmbeddedMetadata {
            exif,
            xmp: binary("XMP").into_iter().collect(),
            iptc_iim: binary("IPTC"),
        }
    }

    /// Mismatches of one file, collected so that one run shows them all.
    struct Report<'a> {
        file: &'a str,
        failures: &'a mut Vec<String>,
    }

    impl Report<'_> {
        fn same<T: PartialEq + Debug>(&mut self, what: &str, ours: T, exiftool: T) {
            if ours != exiftool {
                self.failures.push(format!(
                    "{}: {what}: ours {ours:?}, exiftool {exiftool:?}",
                    self.file
                ));
            }
        }

        fn rects(&mut self, what: &str, ours: &[Vec<f64>], exiftool: &[Vec<f64>]) {
            let close = |a: &Vec<f64>, b: &Vec<f64>| {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6)
            };
            if ours.len() != exiftool.len() || !ours.iter().zip(exiftool).all(|(a, b)| close(a, b))
            {
                self.failures.push(format!(
                    "{}: {what}: ours {ours:?}, exiftool {exiftool:?}",
                    self.file
                ));
            }
        }

        fn near(&mut self, what: &str, ours: Option<f64>, exiftool: Option<f64>) {
            let ok = match (ours, exiftool) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-6,
                (a, b) => a.is_none() && b.is_none(),
            };
            if !ok {
                self.failures.push(format!(
                    "{}: {what}: ours {ours:?}, exiftool {exiftool:?}",
                    self.file
                ));
            }
        }
    }

    /// A capture time in comparable pieces.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct TimeParts {
        /// `YYYY-MM-DD`.
        date: String,
        /// `HH:MM:SS`; `None` for a date alone.
        time: Option<String>,
        /// Milliseconds, three digits.
        fraction: Option<String>,
        /// `±HH:MM`.
        offset: Option<String>,
    }

    /// A date-time as ExifTool prints it: `YYYY:MM:DD[ HH:MM[:SS][.fff][±HH:MM|Z]]`.
    fn exiftool_time(raw: &str) -> Option<TimeParts> {
        let raw = raw.trim();
        let date = raw.get(..10).filter(|d| {
            d.as_bytes().iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b':'
                } else {
                    c.is_ascii_digit()
                }
            })
        })?;
        let date = date.replace(':', "-");
        if date == "0000-00-00" {
            return None;
        }
        let Some(rest) = raw.get(10..).map(str::trim).filter(|r| !r.is_empty()) else {
            return Some(TimeParts {
                date,
                time: None,
                fraction: None,
                offset: None,
            });
        };
        let (clock, zone) = match rest.find(['+', '-', 'Z']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (hms, fraction) = match clock.split_once('.') {
            Some((hms, f)) => (hms, Some(millis(f))),
            None => (clock, None),
        };
        let time = if hms.len() == 5 {
            format!("{hms}:00")
        } else {
            hms.to_owned()
        };
        let offset = match zone {
            "" => None,
            "Z" => Some("+00:00".to_owned()),
            z => Some(z.to_owned()),
        };
        Some(TimeParts {
            date,
            time: Some(time),
            fraction,
            offset,
        })
    }

    fn millis(digits: &str) -> String {
        digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect()
    }

    /// Our capture time in the same pieces.
    fn our_time(time: &CaptureTime) -> TimeParts {
        let date = time.local[..10].to_owned();
        let clock = if time.source.ends_with("(date only)") {
            assert_eq!(&time.local[10..], "T00:00:00", "{time:?}");
            None
        } else {
            Some(time.local[11..19].to_owned())
        };
        TimeParts {
            date,
            time: clock,
            fraction: time.local.get(20..).map(str::to_owned),
            offset: time.offset.clone(),
        }
    }

    /// Our precedence, applied to ExifTool's tags.
    fn expected_time(tags: &Json) -> Option<TimeParts> {
        let exif = |main: &[&str], subsec: &str, offset: &str| {
            let raw = main.iter().find_map(|k| tags.text(k))?;
            let mut parts = exiftool_time(&raw)?;
            if parts.time.is_some() {
                parts.fraction = parts
                    .fraction
                    .or_else(|| tags.text(subsec).map(|s| millis(&s)));
                parts.offset = parts.offset.or_else(|| tags.text(offset));
            }
            Some(parts)
        };
        let xmp = |key: &str| tags.text(key).and_then(|raw| exiftool_time(&raw));
        let iptc = || {
            let date = tags.text("IPTC:DateCreated")?;
            exiftool_time(&format!(
                "{date} {}",
                tags.text("IPTC:TimeCreated").unwrap_or_default()
            ))
        };
        exif(
            &["ExifIFD:DateTimeOriginal", "IFD0:DateTimeOriginal"],
            "ExifIFD:SubSecTimeOriginal",
            "ExifIFD:OffsetTimeOriginal",
        )
        .or_else(|| {
            exif(
                &["ExifIFD:CreateDate", "IFD0:CreateDate"],
                "ExifIFD:SubSecTimeDigitized",
                "ExifIFD:OffsetTimeDigitized",
            )
        })
        .or_else(|| xmp("XMP-exif:DateTimeOriginal"))
        .or_else(|| xmp("XMP-photoshop:DateCreated"))
        .or_else(|| xmp("XMP-xmp:CreateDate"))
        .or_else(iptc)
    }

    /// Signed position and altitude from ExifTool's EXIF GPS tags, else its XMP ones.
    fn expected_gps(tags: &Json) -> Option<(f64, f64, Option<f64>)> {
        let num = |k: &str| tags.text(k).and_then(|t| t.parse::<f64>().ok());
        let signed = |value: f64, reference: Option<String>, negative: &str| {
            if reference.is_some_and(|r| r.eq_ignore_ascii_case(negative)) {
                -value
            } else {
                value
            }
        };
        let altitude = |value: &str, reference: &str| {
            num(value).map(|a| if num(reference) == Some(1.0) { -a } else { a })
        };
        let exif = || {
            Some((
                signed(
                    num("GPS:GPSLatitude")?,
                    tags.text("GPS:GPSLatitudeRef"),
                    "S",
                ),
                signed(
                    num("GPS:GPSLongitude")?,
                    tags.text("GPS:GPSLongitudeRef"),
                    "W",
                ),
                altitude("GPS:GPSAltitude", "GPS:GPSAltitudeRef"),
            ))
        };
        let xmp = || {
            Some((
                num("XMP-exif:GPSLatitude")?,
                num("XMP-exif:GPSLongitude")?,
                altitude("XMP-exif:GPSAltitude", "XMP-exif:GPSAltitudeRef"),
            ))
        };
        exif().or_else(xmp)
    }

    fn valid_orientation(tags: &Json, key: &str) -> Option<u16> {
        tags.text(key)
            .and_then(|t| t.parse::<u16>().ok())
            .filter(|o| (1..=8).contains(o))
    }

    /// A lang-alt tag: ExifTool names the x-default value plainly and the others `Tag-lang`.
    fn lang_alt(tags: &Json, key: &str) -> Option<String> {
        tags.text(key).or_else(|| match tags {
            Json::Obj(members) => members
                .iter()
                .find(|(k, _)| k.starts_with(&format!("{key}-")))
                .and_then(|(_, v)| v.as_text()),
            _ => None,
        })
    }

    fn plus_code(value: Option<String>) -> Option<String> {
        value.map(|v| v.rsplit('/').next().unwrap_or_default().to_owned())
    }

    fn compare(report: &mut Report<'_>, md: &Metadata, tags: &Json, mwg: Option<&Json>) {
        report.same(
            "camera_make",
            md.camera_make.clone(),
            tags.text("IFD0:Make")
                .or_else(|| tags.text("XMP-tiff:Make")),
        );
        report.same(
            "camera_model",
            md.camera_model.clone(),
            tags.text("IFD0:Model")
                .or_else(|| tags.text("XMP-tiff:Model")),
        );
        report.same(
            "orientation",
            md.orientation,
            valid_orientation(tags, "IFD0:Orientation")
                .or_else(|| valid_orientation(tags, "XMP-tiff:Orientation")),
        );

        let expected = expected_gps(tags);
        report.near(
            "latitude",
            md.gps.map(|g| g.latitude),
            expected.map(|g| g.0),
        );
        report.near(
            "longitude",
            md.gps.map(|g| g.longitude),
            expected.map(|g| g.1),
        );
        report.near(
            "altitude",
            md.gps.and_then(|g| g.altitude_m),
            expected.and_then(|g| g.2),
        );

        let ours = md.capture_time.as_ref().map(our_time);
        let theirs = expected_time(tags);
        report.same(
            "capture date",
            ours.as_ref().map(|t| &t.date),
            theirs.as_ref().map(|t| &t.date),
        );
        report.same(
            "capture time of day",
            ours.as_ref().map(|t| &t.time),
            theirs.as_ref().map(|t| &t.time),
        );
        if let Some(fraction) = theirs.as_ref().and_then(|t| t.fraction.as_ref()) {
            report.same(
                "capture sub-seconds",
                ours.as_ref().and_then(|t| t.fraction.as_ref()),
                Some(fraction),
            );
        }
        if let Some(offset) = theirs.as_ref().and_then(|t| t.offset.as_ref()) {
            report.same(
                "capture offset",
                ours.as_ref().and_then(|t| t.offset.as_ref()),
                Some(offset),
            );
        }

        // Descriptive fields: ExifTool's MWG reconciliation for images, plain XMP for sidecars.
        match mwg {
            Some(mwg) => {
                report.same("creator", md.creator.clone(), mwg.texts("MWG:Creator"));
                report.same("caption", md.caption.clone(), mwg.text("MWG:Description"));
                report.same("copyright", md.copyright.clone(), mwg.text("MWG:Copyright"));
                report.same("keywords", md.keywords.clone(), mwg.texts("MWG:Keywords"));
            }
            None => {
                report.same("creator", md.creator.clone(), tags.texts("XMP-dc:Creator"));
                report.same(
                    "caption",
                    md.caption.clone(),
                    lang_alt(tags, "XMP-dc:Description"),
                );
                report.same(
                    "copyright",
                    md.copyright.clone(),
                    lang_alt(tags, "XMP-dc:Rights"),
                );
                report.same(
                    "keywords",
                    md.keywords.clone(),
                    tags.texts("XMP-dc:Subject"),
                );
            }
        }
        report.same(
            "title",
            md.title.clone(),
            lang_alt(tags, "XMP-dc:Title").or_else(|| tags.text("IPTC:ObjectName")),
        );
        report.same(
            "credit",
            md.credit.clone(),
            tags.text("XMP-photoshop:Credit")
                .or_else(|| tags.text("IPTC:Credit")),
        );

        report.same(
            "person_in_image",
            md.person_in_image.clone(),
            tags.texts("XMP-iptcExt:PersonInImage"),
        );
        report.same(
            "model_release_status",
            md.model_release_status.clone(),
            plus_code(tags.text("XMP-plus:ModelReleaseStatus")),
        );
        report.same(
            "model_release_ids",
            md.model_release_ids.clone(),
            tags.texts("XMP-plus:ModelReleaseID"),
        );
        report.same(
            "minor_model_age",
            md.minor_model_age.clone(),
            plus_code(tags.text("XMP-plus:MinorModelAgeDisclosure")),
        );
        report.same(
            "property_release_status",
            md.property_release_status.clone(),
            plus_code(tags.text("XMP-plus:PropertyReleaseStatus")),
        );
        report.same(
            "usage_terms",
            md.licence.usage_terms.clone(),
            lang_alt(tags, "XMP-xmpRights:UsageTerms"),
        );
        report.same(
            "web_statement",
            md.licence.web_statement.clone(),
            tags.text("XMP-xmpRights:WebStatement"),
        );
        let names = |key: &str, field: &str| -> Vec<String> {
            tags.get(key)
                .map(|v| v.items().filter_map(|i| i.text(field)).collect())
                .unwrap_or_default()
        };
        report.same(
            "licensors",
            md.licence.licensors.clone(),
            names("XMP-plus:Licensor", "LicensorName"),
        );
        report.same(
            "copyright_owners",
            md.licence.copyright_owners.clone(),
            names("XMP-plus:CopyrightOwner", "CopyrightOwnerName"),
        );

        // Regions: names, and the areas that lie inside the image.
        let ours = |source: RegionSource| md.regions.iter().filter(move |r| r.source == source);
        let mwg_list: Vec<&Json> = tags
            .get("XMP-mwg-rs:RegionInfo")
            .and_then(|i| i.get("RegionList"))
            .map(|l| l.items().collect())
            .unwrap_or_default();
        report.same(
            "MWG region names",
            ours(RegionSource::Mwg)
                .filter_map(|r| r.name.clone())
                .collect::<Vec<_>>(),
            mwg_list.iter().filter_map(|r| r.text("Name")).collect(),
        );
        let expected_areas: Vec<Vec<f64>> = mwg_list
            .iter()
            .filter_map(|r| {
                let area = r.get("Area")?;
                let n = |k: &str| area.text(k).and_then(|t| t.parse::<f64>().ok());
                let (x, y, w, h) = (
                    n("X")? - n("W")? / 2.0,
                    n("Y")? - n("H")? / 2.0,
                    n("W")?,
                    n("H")?,
                );
                (x >= 0.0 && y >= 0.0 && x + w <= 1.0 && y + h <= 1.0).then_some(vec![x, y, w, h])
            })
            .collect();
        let our_areas: Vec<Vec<f64>> = ours(RegionSource::Mwg)
            .filter_map(|r| r.area.map(|a| vec![a.x, a.y, a.w, a.h]))
            .collect();
        report.rects("MWG region areas (top-left)", &our_areas, &expected_areas);
        let ms_list: Vec<&Json> = tags
            .get("XMP-MP:RegionInfoMP")
            .and_then(|i| i.get("Regions"))
            .map(|l| l.items().collect())
            .unwrap_or_default();
        report.same(
            "Microsoft region names",
            ours(RegionSource::Microsoft)
                .filter_map(|r| r.name.clone())
                .collect::<Vec<_>>(),
            ms_list
                .iter()
                .filter_map(|r| r.text("PersonDisplayName"))
                .collect(),
        );
        let ms_rects: Vec<Vec<f64>> = ms_list
            .iter()
            .filter_map(|r| r.text("Rectangle"))
            .map(|t| {
                t.split(',')
                    .map(|p| p.trim().parse().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let our_rects: Vec<Vec<f64>> = ours(RegionSource::Microsoft)
            .filter_map(|r| r.area.map(|a| vec![a.x, a.y, a.w, a.h]))
            .collect();
        report.rects("Microsoft rectangles", &our_rects, &ms_rects);
        // IPTC regions are named by the person shown in them, else by their own name.
        let iptc_names: Vec<String> = tags
            .get("XMP-iptcExt:ImageRegion")
            .map(|l| {
                l.items()
                    .filter_map(|r| {
                        r.texts("PersonInImage")
                            .into_iter()
                            .next()
                            .or_else(|| r.text("Name"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        report.same(
            "IPTC region names",
            ours(RegionSource::Iptc)
                .filter_map(|r| r.name.clone())
                .collect::<Vec<_>>(),
            iptc_names,
        );
    }

    #[test]
    fn metadata_files_agree_with_exiftool() {
        let Some(dir) = metadata_dir(None) else {
            return;
        };
        let all = files(&dir);
        let (sidecars, images): (Vec<PathBuf>, Vec<PathBuf>) =
            all.iter().cloned().partition(|p| is_sidecar(p));
        assert!(
            images.len() >= 30 && sidecars.len() >= 4,
            "test data incomplete: {} images, {} sidecars",
            images.len(),
            sidecars.len()
        );
        let blocks = exiftool(BLOCK_ARGS, &images);
        let tags = exiftool(TAG_ARGS, &all);
        let mwg = exiftool(MWG_ARGS, &images);

        let mut failures = Vec::new();
        let mut warnings = Vec::new();
        for path in &all {
            let key = path.to_string_lossy().into_owned();
            let name = path
                .strip_prefix(&dir)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            let file_tags = tags
                .get(&key)
                .unwrap_or_else(|| panic!("exiftool gave nothing for {name}"));
            let md = if is_sidecar(path) {
                let mut md = Metadata::default();
                apply_sidecar(&mut md, &std::fs::read(path).expect("readable sidecar"))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                md
            } else {
                read(&embedded_blocks(
                    path,
                    blocks.get(&key).unwrap_or(&Json::Null),
                ))
            };
            let mwg = if is_sidecar(path) {
                None
            } else {
                Some(mwg.get(&key).unwrap_or(&Json::Null))
            };
            compare(
                &mut Report {
                    file: &name,
                    failures: &mut failures,
                },
                &md,
                file_tags,
                mwg,
            );
            warnings.extend(md.warnings.iter().map(|w| format!("  {name}: {w}")));
        }
        if !warnings.is_empty() {
            notice(&format!(
                "metadata warnings over the test data:\n{}",
                warnings.join("\n")
            ));
        }
        assert!(
            failures.is_empty(),
            "{} mismatch(es) with ExifTool:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// IPTC and XMP disagree on purpose in this file ("WRONG"/"RIGHT", from
    /// ExifTool's own MWG test). ExifTool's per-group output lists both sides
    /// unreconciled; its MWG tags and our reader pick the same, right, values.
    #[test]
    fn conflicting_iptc_and_xmp_are_reconciled_as_mwg_prescribes() {
        const NAME: &str = "exiftool_mwg_conflicting_iptc_xmp.jpg";
        let Some(dir) = metadata_dir(Some(NAME)) else {
            return;
        };
        let file = dir.join(NAME);
        let key = file.to_string_lossy().into_owned();
        let files = [file.clone()];
        let md = read(&embedded_blocks(&file, &exiftool(BLOCK_ARGS, &files)[&key]));

        assert_eq!(md.caption.as_deref(), Some("RIGHT-EXIF-Description"));
        assert_eq!(
            md.creator,
            ["RIGHT1of2-EXIF-Creator", "RIGHT2of2-EXIF-Creator"]
        );
        assert_eq!(md.copyright.as_deref(), Some("RIGHT-XMP-Copyright"));
        assert_eq!(
            md.keywords,
            ["RIGHT1of2-XMP-Keywords", "RIGHT2of2-XMP-Keywords"]
        );
        let time = md.capture_time.as_ref().unwrap();
        assert_eq!(
            (
                time.local.as_str(),
                time.offset.as_deref(),
                time.source.as_str()
            ),
            ("2001-01-01T01:11:11.111", None, "EXIF DateTimeOriginal")
        );
        assert_eq!(md.orientation, Some(6));
        assert!(!format!("{md:?}").contains("WRONG"), "{md:#?}");

        let mwg = &exiftool(MWG_ARGS, &files)[&key];
        assert_eq!(mwg.text("MWG:Description"), md.caption);
        assert_eq!(mwg.texts("MWG:Creator"), md.creator);
        assert_eq!(mwg.text("MWG:Copyright"), md.copyright);
        assert_eq!(mwg.texts("MWG:Keywords"), md.keywords);

        let tags = &exiftool(TAG_ARGS, &files)[&key];
        assert_eq!(
            tags.text("XMP-dc:Description").as_deref(),
            Some("WRONG-XMP-Description")
        );
        assert_eq!(
            tags.text("IPTC:Caption-Abstract").as_deref(),
            Some("WRONG-IPTC-Description")
        );
        assert_eq!(
            tags.texts("IPTC:Keywords"),
            ["WRONG1of2-IPTC-Keywords", "WRONG2of2-IPTC-Keywords"]
        );
        assert_eq!(
            tags.texts("XMP-dc:Creator"),
            ["WRONG1of2-XMP-Creator", "WRONG2of2-XMP-Creator"]
        );
    }

    /// Just enough JSON for ExifTool's output. Numbers keep their text.
    #[derive(Debug, Clone, PartialEq)]
    enum Json {
        Null,
        Bool(bool),
        Num(String),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn parse(text: &str) -> Json {
            let mut parser = JsonParser {
                chars: text.chars().collect(),
                pos: 0,
            };
            let value = parser.value();
            parser.skip_ws();
            assert_eq!(parser.pos, parser.chars.len(), "trailing data after JSON");
            value
        }

        fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        /// A string or number, trimmed; `None` when empty.
        fn as_text(&self) -> Option<String> {
            match self {
                Json::Str(s) | Json::Num(s) => clean_text(s),
                Json::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }

        fn text(&self, key: &str) -> Option<String> {
            self.get(key).and_then(Json::as_text)
        }

        /// A list tag (one value is printed without the array).
        fn texts(&self, key: &str) -> Vec<String> {
            match self.get(key) {
                Some(Json::Arr(items)) => items.iter().filter_map(Json::as_text).collect(),
                Some(value) => value.as_text().into_iter().collect(),
                None => Vec::new(),
            }
        }

        fn items(&self) -> impl Iterator<Item = &Json> {
            match self {
                Json::Arr(items) => items.iter().collect::<Vec<_>>().into_iter(),
                other => vec![other].into_iter(),
            }
        }
    }

    struct JsonParser {
        chars: Vec<char>,
        pos: usize,
    }

    impl JsonParser {
        fn skip_ws(&mut self) {
            while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
                self.pos += 1;
            }
        }

        fn next(&mut self) -> char {
            let c = *self.chars.get(self.pos).expect("JSON ends early");
            self.pos += 1;
            c
        }

        fn expect(&mut self, word: &str) {
            for expected in word.chars() {
                assert_eq!(self.next(), expected, "bad JSON literal");
            }
        }

        fn value(&mut self) -> Json {
            self.skip_ws();
            match self.chars.get(self.pos).copied().expect("JSON ends early") {
                '{' => {
                    self.pos += 1;
                    let mut members = Vec::new();
                    loop {
                        self.skip_ws();
                        match self.next() {
                            '}' => break,
                            ',' => continue,
                            '"' => {
                                let key = self.string();
                                self.skip_ws();
                                assert_eq!(self.next(), ':', "JSON object needs ':'");
                                members.push((key, self.value()));
                            }
                            c => panic!("unexpected {c:?} in JSON object"),
                        }
                    }
                    Json::Obj(members)
                }
                '[' => {
                    self.pos += 1;
                    let mut items = Vec::new();
                    loop {
                        self.skip_ws();
                        match self.chars.get(self.pos) {
                            Some(']') => {
                                self.pos += 1;
                                break;
                            }
                            Some(',') => self.pos += 1,
                            _ => items.push(self.value()),
                        }
                    }
                    Json::Arr(items)
                }
                '"' => {
                    self.pos += 1;
                    Json::Str(self.string())
                }
                't' => {
                    self.expect("true");
                    Json::Bool(true)
                }
                'f' => {
                    self.expect("false");
                    Json::Bool(false)
                }
                'n' => {
                    self.expect("null");
                    Json::Null
                }
                _ => {
                    let start = self.pos;
                    while self
                        .chars
                        .get(self.pos)
                        .is_some_and(|c| matches!(c, '0'..='9' | '-' | '+' | '.' | 'e' | 'E'))
                    {
                        self.pos += 1;
                    }
                    assert!(self.pos > start, "unexpected character in JSON at {start}");
                    Json::Num(self.chars[start..self.pos].iter().collect())
                }
            }
        }

        /// The four hex digits of a `\\u` escape.
        fn unit(&mut self) -> u16 {
            let hex: String = (0..4).map(|_| self.next()).collect();
            u16::from_str_radix(&hex, 16).expect("\\u escape")
        }

        /// The rest of a string whose opening quote was read.
        fn string(&mut self) -> String {
            let mut out = String::new();
            loop {
                match self.next() {
                    '"' => return out,
                    '\\' => match self.next() {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let first = self.unit();
                            let units = if (0xD800..0xDC00).contains(&first) {
                                self.expect("\\u");
                                vec![first, self.unit()]
                            } else {
                                vec![first]
                            };
                            out.extend(
                                char::decode_utf16(units)
                                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
                            );
                        }
                        other => out.push(other),
                    },
                    c => out.push(c),
                }
            }
        }
    }

    fn base64(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 character {c:?}"),
        };
        let digits: Vec<u8> = text
            .bytes()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
            .map(value)
            .collect();
        digits
            .chunks(4)
            .flat_map(|chunk| {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
                n.to_be_bytes()[1..chunk.len()].to_vec()
            })
            .collect()
    }

    #[test]
    fn helpers_base64_and_json() {
        assert_eq!(base64("TWFu"), b"Man");
        assert_eq!(base64("TWE="), b"Ma");
        assert_eq!(base64("TQ=="), b"M");
        let json = Json::parse(
            r#"[{"a": "x\"\u00e9\ud83d\ude00", "n": -1.5e3, "l": [1, "b"], "t": true, "z": null}]"#,
        );
        let Json::Arr(items) = json else { panic!() };
        assert_eq!(items[0].text("a").as_deref(), Some("x\"é😀"));
        assert_eq!(items[0].text("n").as_deref(), Some("-1.5e3"));
        assert_eq!(items[0].texts("l"), ["1", "b"]);
    }
}
