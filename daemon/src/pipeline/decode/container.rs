//! Container inspection: identify an image file from its bytes and check its
//! structure before any pixel is decoded.
//!
//! Input: the complete bytes of one file. The format is sniffed from magic
//! bytes only; the file name is never consulted.
//!
//! Output: a [`ContainerInfo`] with the [`ImageFormat`], the stored pixel size
//! (before EXIF orientation or HEIF `irot` is applied), the `irot` rotation of
//! a HEIF/AVIF primary item, and the embedded metadata blocks (EXIF, XMP,
//! IPTC-IIM) copied out raw for the metadata module to interpret.
//!
//! Failure modes ([`ContainerError`]):
//! - `Empty`: a zero-byte file.
//! - `NotAnImage`: something else (PDF, text, archive, ...), named when known.
//! - `Unsupported`: an image format that is recognised but not ingested
//!   (GIF, BMP, JPEG 2000, JPEG XL, PSD, camera raw, ...).
//! - `Truncated`: the structure points past the end of the bytes (a partial
//!   download or copy).
//! - `Corrupt`: the structure is inconsistent (bad chunk CRC, invalid marker
//!   in JPEG scan data, missing mandatory parts, undecodable item data).
//!
//! What is checked, per format:
//! - JPEG: every marker segment from SOI to EOI, including the entropy-coded
//!   data after each SOS (only stuffed bytes, restart markers and fill bytes
//!   may appear inside it). Bytes after EOI are ignored.
//! - PNG: every chunk's length and CRC-32, IHDR first, IDAT present, IEND
//!   present.
//! - WebP: the RIFF size against the file, every chunk's size, the VP8/VP8L
//!   bitstream header.
//! - TIFF: the IFD chain (bounded, loop-checked) and that IFD0's strips or
//!   tiles lie inside the file.
//! - HEIF/AVIF: every top-level box size, the item tables in `meta`, that every
//!   item's data lies inside the file, and that the primary image's coded
//!   data is a well-formed sequence of HEVC NAL units or AV1 OBUs.
//!
//! Resource use: nothing here allocates in proportion to the dimensions an
//! image claims. The only allocations are copies of metadata blocks and small
//! per-item tables, all bounded by the input length; the work is linear in the
//! input length. Every read is bounds-checked, so any input, however damaged,
//! yields a value or an error and never a panic. Rejecting huge (but
//! well-formed) images is the caller's pixel-limit check.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::pipeline::metadata::EmbeddedMetadata;

/// An image format that ingestion accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Tiff,
    WebP,
    Heif,
    Avif,
}

impl ImageFormat {
    /// The conventional display name ("JPEG", "PNG", "TIFF", "WebP", "HEIF", "AVIF").
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::WebP => "WebP",
            ImageFormat::Heif => "HEIF",
            ImageFormat::Avif => "AVIF",
        }
    }

    /// The registered media type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Tiff => "image/tiff",
            ImageFormat::WebP => "image/webp",
            ImageFormat::Heif => "image/heif",
            ImageFormat::Avif => "image/avif",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a file cannot be ingested. Every message names the problem in words a
/// person can act on (re-export, re-copy, convert).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an image: {0}")]
    NotAnImage(String),
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    #[error("truncated {format} file: {detail}")]
    Truncated {
        format: &'static str,
        detail: String,
    },
    #[error("corrupt {format} file: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
}

impl ContainerError {
    fn truncated(format: ImageFormat, detail: impl Into<String>) -> Self {
        ContainerError::Truncated {
            format: format.name(),
            detail: detail.into(),
        }
    }

    fn corrupt(format: ImageFormat, detail: impl Into<String>) -> Self {
        ContainerError::Corrupt {
            format: format.name(),
            detail: detail.into(),
        }
    }
}

/// What [`inspect`] learned about a structurally sound image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub format: ImageFormat,
    /// Stored width in pixels, before any EXIF orientation or HEIF `irot`.
    pub width: u32,
    /// Stored height in pixels, before any EXIF orientation or HEIF `irot`.
    pub height: u32,
    /// Counter-clockwise quarter turns (0..=3) from the `irot` property of a
    /// HEIF/AVIF primary item; 0 for other formats.
    pub quarter_turns: u8,
    pub metadata: EmbeddedMetadata,
}

/// Identifies and structurally checks an image file from its bytes.
///
/// See the module documentation for what is checked and what each error
/// means. Never panics and never allocates in proportion to the claimed
/// image dimensions.
pub fn inspect(bytes: &[u8]) -> Result<ContainerInfo, ContainerError> {
    if bytes.is_empty() {
        return Err(ContainerError::Empty);
    }
    match sniff(bytes)? {
        Sniffed::Jpeg => inspect_jpeg(bytes),
        Sniffed::Png => inspect_png(bytes),
        Sniffed::Tiff => inspect_tiff(bytes),
        Sniffed::WebP => inspect_webp(bytes),
        Sniffed::Isobmff(format) => inspect_isobmff(bytes, format),
    }
}

// ---------------------------------------------------------------------------
// Byte helpers. All return `None` instead of reading out of bounds.

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_be_bytes)
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_be_bytes)
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_le_bytes)
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let [x, y, z] = array::<3>(b, at)?;
    Some(u32::from_le_bytes([x, y, z, 0]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_le_bytes)
}

/// `b[start..start + len]`, or `None` if any part of it is out of bounds.
fn slice_at(b: &[u8], start: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

/// Whether `b` starts with a TIFF header ("II*\0" or "MM\0*"), as EXIF must.
fn is_tiff_header(b: &[u8]) -> bool {
    b.starts_with(b"II*\0") || b.starts_with(b"MM\0*")
}

/// Strips an optional "Exif\0\0" prefix and keeps the block only if it is
/// TIFF-structured.
fn exif_payload(b: &[u8]) -> Option<Vec<u8>> {
    let b = b.strip_prefix(b"Exif\0\0").unwrap_or(b);
    is_tiff_header(b).then(|| b.to_vec())
}

/// A four-character code for messages: printable ASCII kept, the rest escaped.
fn fourcc(code: &[u8]) -> String {
    code.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// The first few bytes as lowercase hex, for "unknown content" messages.
fn hex_prefix(b: &[u8]) -> String {
    b.iter()
        .take(4)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Sniffing.

enum Sniffed {
    Jpeg,
    Png,
    Tiff,
    WebP,
    Isobmff(ImageFormat),
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Image formats that are recognised but not ingested, by signature.
const UNSUPPORTED_SIGNATURES: &[(&[u8], &str)] = &[
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"\0\0\0\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\0\0\0\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"8BPS", "Photoshop document (PSD)"),
    (b"v/1\x01", "OpenEXR"),
    (b"qoif", "QOI"),
    (b"II*\0\x10\0\0\0CR", "Canon CR2 raw image"),
    (b"IIRO\x08\0", "Olympus ORF raw image"),
    (b"IIRS\x08\0", "Olympus ORF raw image"),
    (b"MMOR\0\0", "Olympus ORF raw image"),
    (b"IIU\0", "Panasonic RW2 raw image"),
    (b"FUJIFILMCCD-RAW", "Fujifilm RAF raw image"),
    (b"II+\0", "BigTIFF"),
    (b"MM\0+", "BigTIFF"),
    (b"\0\0\x01\0\x01\0", "Windows icon (ICO)"),
];

/// Common non-image files, by signature.
const NON_IMAGE_SIGNATURES: &[(&[u8], &str)] = &[
    (b"%PDF-", "PDF document"),
    (
        b"PK\x03\x04",
        "ZIP archive (or an Office/OpenDocument file)",
    ),
    (b"PK\x05\x06", "ZIP archive (empty)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x7fELF", "ELF executable"),
    (b"%!PS", "PostScript document"),
    (b"ID3", "MP3 audio"),
    (b"OggS", "Ogg audio or video"),
    (b"fLaC", "FLAC audio"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
    (b"SQLite format 3\0", "SQLite database"),
];

const HEIF_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
];
const GENERIC_HEIF_BRANDS: &[&[u8; 4]] = &[b"mif1", b"msf1", b"mif2", b"mif3"];
const AVIF_BRANDS: &[&[u8; 4]] = &[b"avif", b"avis", b"avio"];

fn sniff(b: &[u8]) -> Result<Sniffed, ContainerError> {
    if b.starts_with(b"\xff\xd8\xff") {
        return Ok(Sniffed::Jpeg);
    }
    if b.starts_with(PNG_SIGNATURE) {
        return Ok(Sniffed::Png);
    }
    if let Some((_, name)) = UNSUPPORTED_SIGNATURES
        .iter()
        .find(|(sig, _)| b.starts_with(sig))
    {
        return Err(ContainerError::Unsupported((*name).to_owned()));
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return Ok(Sniffed::Tiff);
    }
    if b.starts_with(b"RIFF") {
        return match b.get(8..12) {
            Some(b"WEBP") => Ok(Sniffed::WebP),
            Some(b"AVI ") => Err(ContainerError::NotAnImage("AVI video".into())),
            Some(b"WAVE") => Err(ContainerError::NotAnImage("WAVE audio".into())),
            Some(kind) => Err(ContainerError::NotAnImage(format!(
                "RIFF file of type '{}', not WebP",
                fourcc(kind)
            ))),
            None => Err(ContainerError::truncated(
                ImageFormat::WebP,
                format!("the file ends inside the RIFF header ({} bytes)", b.len()),
            )),
        };
    }
    if b.get(4..8) == Some(b"ftyp")
        && let Some(major) = array::<4>(b, 8)
    {
        return sniff_isobmff(b, major).map(Sniffed::Isobmff);
    }
    if is_bmp(b) {
        return Err(ContainerError::Unsupported("BMP".into()));
    }
    Err(ContainerError::NotAnImage(describe_non_image(b)))
}

/// Decides HEIF vs AVIF from the `ftyp` brands; other ISO media is rejected.
fn sniff_isobmff(b: &[u8], major: [u8; 4]) -> Result<ImageFormat, ContainerError> {
    let declared = be32(b, 0)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let end = declared.clamp(16, 4096).min(b.len());
    let compatible: Vec<[u8; 4]> = b
        .get(16..end)
        .unwrap_or(&[])
        .chunks_exact(4)
        .filter_map(|c| c.try_into().ok())
        .collect();
    let has = |set: &[&[u8; 4]]| {
        set.iter()
            .any(|brand| **brand == major || compatible.iter().any(|c| c == *brand))
    };
    if AVIF_BRANDS.iter().any(|brand| **brand == major) {
        Ok(ImageFormat::Avif)
    } else if HEIF_BRANDS.iter().any(|brand| **brand == major) || has(HEIF_BRANDS) {
        Ok(ImageFormat::Heif)
    } else if has(AVIF_BRANDS) {
        Ok(ImageFormat::Avif)
    } else if has(GENERIC_HEIF_BRANDS) {
        Ok(ImageFormat::Heif)
    } else if major == *b"crx " {
        Err(ContainerError::Unsupported("Canon CR3 raw image".into()))
    } else if major == *b"qt  " {
        Err(ContainerError::NotAnImage("QuickTime movie".into()))
    } else {
        Err(ContainerError::NotAnImage(format!(
            "ISO media file with brand '{}' (video or audio, not a HEIF/AVIF image)",
            fourcc(&major)
        )))
    }
}

fn is_bmp(b: &[u8]) -> bool {
    b.starts_with(b"BM")
        && be32(b, 6) == Some(0)
        && le32(b, 14).is_some_and(|dib| matches!(dib, 12 | 40 | 52 | 56 | 64 | 108 | 124))
}

/// Names a non-image file as precisely as cheap checks allow.
fn describe_non_image(b: &[u8]) -> String {
    if let Some((_, name)) = NON_IMAGE_SIGNATURES
        .iter()
        .find(|(sig, _)| b.starts_with(sig))
    {
        return (*name).to_owned();
    }
    if looks_like_text(b) {
        let text = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
        let start = text
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(text.len());
        let head = text.get(start..text.len().min(start + 1024)).unwrap_or(&[]);
        if head.first() == Some(&b'<') {
            let lower = head.to_ascii_lowercase();
            let contains = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
            return if contains(b"<x:xmpmeta") || contains(b"<?xpacket") {
                "XMP metadata (a sidecar file, not an image)".into()
            } else if contains(b"<svg") {
                "SVG vector graphics (only raster images are ingested)".into()
            } else if contains(b"<html") || contains(b"<!doctype html") {
                "HTML document".into()
            } else {
                "XML document".into()
            };
        }
        return "plain text".into();
    }
    format!("unknown content (first bytes {})", hex_prefix(b))
}

/// Whether the first 512 bytes are printable UTF-8 text.
fn looks_like_text(b: &[u8]) -> bool {
    let head = b.get(..512).unwrap_or(b);
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut by the 512-byte window is still text.
        Err(e) if e.error_len().is_none() && head.len() == 512 => {
            std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

// ---------------------------------------------------------------------------
// JPEG.

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DNL: u8 = 0xDC;
const APP1: u8 = 0xE1;
const APP13: u8 = 0xED;

const XMP_APP1_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const XMP_EXT_APP1_ID: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";
const PHOTOSHOP_APP13_ID: &[u8] = b"Photoshop 3.0\0";

fn is_sof(code: u8) -> bool {
    matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

/// A readable marker name such as "SOF0", "APP1" or "DQT".
fn marker_name(code: u8) -> String {
    match code {
        0xC4 => "DHT".into(),
        0xCC => "DAC".into(),
        c if is_sof(c) => format!("SOF{}", c - 0xC0),
        0xD0..=0xD7 => format!("RST{}", code - 0xD0),
        SOI => "SOI".into(),
        EOI => "EOI".into(),
        SOS => "SOS".into(),
        0xDB => "DQT".into(),
        DNL => "DNL".into(),
        0xDD => "DRI".into(),
        0xE0..=0xEF => format!("APP{}", code - 0xE0),
        0xFE => "COM".into(),
        _ => "marker".into(),
    }
}

/// Everything collected from the metadata segments; slices borrow the input.
#[derive(Default)]
struct JpegMetadata<'a> {
    exif: Option<Vec<u8>>,
    xmp: Vec<Vec<u8>>,
    extended_xmp: Vec<ExtendedXmpChunk<'a>>,
    photoshop: Vec<&'a [u8]>,
}

struct ExtendedXmpChunk<'a> {
    guid: &'a [u8],
    full_len: u32,
    offset: u32,
    data: &'a [u8],
}

impl<'a> JpegMetadata<'a> {
    fn read_segment(&mut self, code: u8, payload: &'a [u8]) {
        if code == APP1 {
            if let Some(rest) = payload.strip_prefix(b"Exif\0\0") {
                if self.exif.is_none() && is_tiff_header(rest) {
                    self.exif = Some(rest.to_vec());
                }
            } else if let Some(rest) = payload.strip_prefix(XMP_APP1_ID) {
                self.xmp.push(rest.to_vec());
            } else if let Some(rest) = payload.strip_prefix(XMP_EXT_APP1_ID) {
                // GUID (32 hex digits), full length, offset of this chunk.
                if let (Some(guid), Some(full_len), Some(offset), Some(data)) = (
                    rest.get(..32),
                    be32(rest, 32),
                    be32(rest, 36),
                    rest.get(40..),
                ) {
                    self.extended_xmp.push(ExtendedXmpChunk {
                        guid,
                        full_len,
                        offset,
                        data,
                    });
                }
            }
        } else if code == APP13
            && let Some(rest) = payload.strip_prefix(PHOTOSHOP_APP13_ID)
        {
            self.photoshop.push(rest);
        }
    }

    fn finish(mut self) -> EmbeddedMetadata {
        let mut xmp = self.xmp;
        xmp.extend(assemble_extended_xmp(&mut self.extended_xmp));
        // IPTC data larger than one segment continues in the next APP13.
        let iptc_iim = match self.photoshop.as_slice() {
            [] => None,
            [one] => photoshop_iptc(one).map(<[u8]>::to_vec),
            many => photoshop_iptc(&many.concat()).map(<[u8]>::to_vec),
        };
        EmbeddedMetadata {
            exif: self.exif,
            xmp,
            iptc_iim: iptc_iim.filter(|iim| !iim.is_empty()),
        }
    }
}

/// Reassembles extended XMP (split across APP1 segments, grouped by GUID).
/// Incomplete or inconsistent groups are dropped.
fn assemble_extended_xmp(chunks: &mut [ExtendedXmpChunk<'_>]) -> Vec<Vec<u8>> {
    chunks.sort_by(|a, b| (a.guid, a.full_len, a.offset).cmp(&(b.guid, b.full_len, b.offset)));
    let mut packets = Vec::new();
    for group in chunks.chunk_by(|a, b| a.guid == b.guid && a.full_len == b.full_len) {
        let Some(first) = group.first() else { continue };
        let mut packet: Vec<u8> = Vec::new();
        let mut complete = true;
        for chunk in group {
            let offset = usize::try_from(chunk.offset).unwrap_or(usize::MAX);
            match offset.cmp(&packet.len()) {
                std::cmp::Ordering::Equal => packet.extend_from_slice(chunk.data),
                std::cmp::Ordering::Less => {} // a repeated chunk
                std::cmp::Ordering::Greater => {
                    complete = false;
                    break;
                }
            }
        }
        if complete && !packet.is_empty() && u32::try_from(packet.len()) == Ok(first.full_len) {
            packets.push(packet);
        }
    }
    packets
}

/// Finds the IPTC-IIM block (resource 0x0404) in Photoshop image resources.
fn photoshop_iptc(resources: &[u8]) -> Option<&[u8]> {
    const SIGNATURES: &[&[u8]] = &[b"8BIM", b"PHUT", b"AgHg", b"DCSR", b"MeSa"];
    let mut pos = 0usize;
    while let Some(signature) = resources.get(pos..pos.checked_add(4)?) {
        if !SIGNATURES.contains(&signature) {
            return None;
        }
        let id = be16(resources, pos + 4)?;
        // Pascal-string name, padded so that length byte + name is even.
        let name_len = usize::from(*resources.get(pos + 6)?);
        let size_at = pos + 6 + ((name_len + 2) & !1);
        let size = usize::try_from(be32(resources, size_at)?).ok()?;
        let data_at = size_at + 4;
        let data = resources.get(data_at..data_at.checked_add(size)?)?;
        if signature == b"8BIM" && id == 0x0404 {
            return Some(data);
        }
        pos = data_at + size + (size & 1);
    }
    None
}

#[derive(Clone, Copy)]
struct JpegFrame {
    width: u32,
    height: u32,
}

fn inspect_jpeg(b: &[u8]) -> Result<ContainerInfo, ContainerError> {
    const F: ImageFormat = ImageFormat::Jpeg;
    let mut meta = JpegMetadata::default();
    let mut frame: Option<JpegFrame> = None;
    let mut scans = 0usize;
    let mut pos = 2usize; // just after SOI

    loop {
        // Decoders skip stray bytes between segments with a warning; so do we.
        let Some(skip) = b
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
        else {
            return Err(jpeg_ends_early(frame.is_some(), scans, b.len()));
        };
        pos += skip;
        let marker_at = pos;
        while b.get(pos) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        let Some(&code) = b.get(pos) else {
            return Err(jpeg_ends_early(frame.is_some(), scans, b.len()));
        };
        pos += 1;

        match code {
            EOI => {
                let Some(frame) = frame else {
                    return Err(ContainerError::corrupt(
                        F,
                        format!(
                            "headers only, no image data (end-of-image marker at offset {marker_at} with no frame header)"
                        ),
                    ));
                };
                if scans == 0 {
                    return Err(ContainerError::corrupt(
                        F,
                        format!(
                            "headers only, no image data (end-of-image marker at offset {marker_at} before any scan)"
                        ),
                    ));
                }
                if frame.height == 0 {
                    return Err(ContainerError::corrupt(
                        F,
                        "the frame header gives a height of 0 and no DNL marker defines it",
                    ));
                }
                return Ok(ContainerInfo {
                    format: F,
                    width: frame.width,
                    height: frame.height,
                    quarter_turns: 0,
                    metadata: meta.finish(),
                });
            }
            SOI => {
                return Err(ContainerError::corrupt(
                    F,
                    format!("unexpected second start-of-image marker at offset {marker_at}"),
                ));
            }
            // Stand-alone markers without a length (restart markers outside a
            // scan and TEM are tolerated by decoders).
            0x01 | 0xD0..=0xD7 => continue,
            0x00 | 0x02..=0xBF => {
                return Err(ContainerError::corrupt(
                    F,
                    format!("invalid marker 0xFF{code:02X} at offset {marker_at}"),
                ));
            }
            0xF7 => return Err(ContainerError::Unsupported("JPEG-LS".into())),
            _ => {}
        }

        let name = marker_name(code);
        let Some(len) = be16(b, pos) else {
            return Err(ContainerError::truncated(
                F,
                format!("the file ends inside the {name} segment header at offset {marker_at}"),
            ));
        };
        let len = usize::from(len);
        if len < 2 {
            return Err(ContainerError::corrupt(
                F,
                format!(
                    "{name} segment at offset {marker_at} declares an invalid length of {len} bytes"
                ),
            ));
        }
        let Some(payload) = b.get(pos + 2..pos + len) else {
            return Err(ContainerError::truncated(
                F,
                format!(
                    "{name} segment at offset {marker_at} declares {len} bytes but only {} remain",
                    b.len() - pos
                ),
            ));
        };
        pos += len;

        if is_sof(code) {
            if frame.is_some() {
                return Err(ContainerError::corrupt(
                    F,
                    format!(
                        "second frame header ({name}) at offset {marker_at}; hierarchical or multi-frame JPEG is not supported"
                    ),
                ));
            }
            frame = Some(parse_sof(payload, &name, marker_at)?);
        } else if code == SOS {
            if frame.is_none() {
                return Err(ContainerError::corrupt(
                    F,
                    format!("start-of-scan at offset {marker_at} comes before any frame header"),
                ));
            }
            let components = payload.first().copied().unwrap_or(0);
            if !(1..=4).contains(&components) || payload.len() != 4 + 2 * usize::from(components) {
                return Err(ContainerError::corrupt(
                    F,
                    format!("malformed start-of-scan header at offset {marker_at}"),
                ));
            }
            pos = skip_scan_data(b, pos)?;
            scans += 1;
        } else if code == DNL {
            if let (Some(lines), Some(frame)) = (be16(payload, 0), frame.as_mut())
                && frame.height == 0
            {
                frame.height = u32::from(lines);
            }
        } else {
            meta.read_segment(code, payload);
        }
    }
}

/// Parses a SOFn payload: precision, height, width, components.
fn parse_sof(payload: &[u8], name: &str, at: usize) -> Result<JpegFrame, ContainerError> {
    const F: ImageFormat = ImageFormat::Jpeg;
    let (Some(height), Some(width), Some(&components)) =
        (be16(payload, 1), be16(payload, 3), payload.get(5))
    else {
        return Err(ContainerError::corrupt(
            F,
            format!("frame header ({name}) at offset {at} is too short"),
        ));
    };
    if components == 0 || payload.len() < 6 + 3 * usize::from(components) {
        return Err(ContainerError::corrupt(
            F,
            format!("frame header ({name}) at offset {at} has an invalid component list"),
        ));
    }
    if width == 0 {
        return Err(ContainerError::corrupt(
            F,
            format!("frame header ({name}) at offset {at} gives a width of 0"),
        ));
    }
    Ok(JpegFrame {
        width: u32::from(width),
        height: u32::from(height),
    })
}

/// Walks entropy-coded scan data from `pos` and returns the offset of the
/// marker that ends it.
fn skip_scan_data(b: &[u8], mut pos: usize) -> Result<usize, ContainerError> {
    const F: ImageFormat = ImageFormat::Jpeg;
    let ends_inside = || {
        ContainerError::truncated(
            F,
            "no end-of-image marker; the file ends inside the scan data",
        )
    };
    loop {
        let rest = b.get(pos..).unwrap_or(&[]);
        let ff = pos
            + rest
                .iter()
                .position(|&x| x == 0xFF)
                .ok_or_else(ends_inside)?;
        let mut next = ff + 1;
        while b.get(next) == Some(&0xFF) {
            next += 1;
        }
        let code = *b.get(next).ok_or_else(ends_inside)?;
        match code {
            // Stuffed zero byte and restart markers belong to the scan.
            0x00 | 0xD0..=0xD7 => pos = next + 1,
            // Markers that may legally follow a scan.
            0xC4 | 0xCC | EOI | SOS | 0xDB | DNL | 0xDD | 0xE0..=0xEF | 0xFE => return Ok(ff),
            c => {
                return Err(ContainerError::corrupt(
                    F,
                    format!(
                        "invalid marker 0xFF{c:02X} at offset {} in scan data",
                        next - 1
                    ),
                ));
            }
        }
    }
}

fn jpeg_ends_early(has_frame: bool, scans: usize, len: usize) -> ContainerError {
    let detail = if scans > 0 {
        format!("no end-of-image marker; the file ends after scan {scans} at offset {len}")
    } else if has_frame {
        format!("headers only, no image data; the file ends at offset {len} before the first scan")
    } else {
        format!(
            "headers only, no image data; the file ends at offset {len} before the frame header"
        )
    };
    ContainerError::truncated(ImageFormat::Jpeg, detail)
}

// ---------------------------------------------------------------------------
// PNG.

/// CRC-32 (ISO 3309, as used by PNG), table-driven.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| {
        CRC_TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8)
    })
}

const PNG_XMP_KEYWORD: &[u8] = b"XML:com.adobe.xmp";

fn inspect_png(b: &[u8]) -> Result<ContainerInfo, ContainerError> {
    const F: ImageFormat = ImageFormat::Png;
    let mut pos = PNG_SIGNATURE.len();
    let mut header: Option<(u32, u32, u8)> = None; // width, height, colour type
    let mut seen_plte = false;
    let mut seen_idat = false;
    let mut metadata = EmbeddedMetadata::default();

    loop {
        let remaining = b.len().saturating_sub(pos);
        if remaining == 0 {
            let detail = if header.is_none() {
                "the file ends right after the PNG signature".to_owned()
            } else if !seen_idat {
                format!("the file ends at offset {pos} before any image data (no IDAT chunk)")
            } else {
                format!("no IEND chunk; the file ends at offset {pos}")
            };
            return Err(ContainerError::truncated(F, detail));
        }
        let (Some(len), Some(kind)) = (be32(b, pos), array::<4>(b, pos + 4)) else {
            return Err(ContainerError::truncated(
                F,
                format!("the file ends inside the chunk header at offset {pos}"),
            ));
        };
        let name = fourcc(&kind);
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(ContainerError::corrupt(
                F,
                format!("invalid chunk type '{name}' at offset {pos}"),
            ));
        }
        if len > 0x7FFF_FFFF {
            return Err(ContainerError::corrupt(
                F,
                format!("chunk '{name}' at offset {pos} declares an invalid length of {len} bytes"),
            ));
        }
        let data_len = len as usize;
        let (Some(data), Some(stored_crc)) = (
            b.get(pos + 8..pos + 8 + data_len),
            be32(b, pos + 8 + data_len),
        ) else {
            return Err(ContainerError::truncated(
                F,
                format!(
                    "chunk '{name}' at offset {pos} declares {} bytes but only {remaining} remain",
                    u64::from(len) + 12
                ),
            ));
        };
        let computed_crc = crc32(b.get(pos + 4..pos + 8 + data_len).unwrap_or(&[]));
        if stored_crc != computed_crc {
            return Err(ContainerError::corrupt(
                F,
                format!(
                    "chunk '{name}' at offset {pos} has a bad CRC (stored {stored_crc:08x}, computed {computed_crc:08x})"
                ),
            ));
        }
        if header.is_none() && &kind != b"IHDR" {
            if &kind == b"CgBI" {
                return Err(ContainerError::Unsupported(
                    "Apple-optimised PNG (CgBI); re-export it as a standard PNG".into(),
                ));
            }
            return Err(ContainerError::corrupt(
                F,
                format!("the first chunk is '{name}', not IHDR"),
            ));
        }

        match &kind {
            b"IHDR" => {
                if header.is_some() {
                    return Err(ContainerError::corrupt(
                        F,
                        format!("second IHDR chunk at offset {pos}"),
                    ));
                }
                header = Some(parse_ihdr(data)?);
            }
            b"PLTE" => seen_plte = true,
            b"IDAT" => {
                if header.is_some_and(|(_, _, colour)| colour == 3) && !seen_plte {
                    return Err(ContainerError::corrupt(
                        F,
                        "palette image has no PLTE chunk before its image data",
                    ));
                }
                seen_idat = true;
            }
            b"IEND" => {
                let Some((width, height, _)) = header else {
                    return Err(ContainerError::corrupt(F, "no IHDR chunk"));
                };
                if !seen_idat {
                    return Err(ContainerError::corrupt(
                        F,
                        format!("no image data (IEND at offset {pos} comes before any IDAT chunk)"),
                    ));
                }
                return Ok(ContainerInfo {
                    format: F,
                    width,
                    height,
                    quarter_turns: 0,
                    metadata,
                });
            }
            b"iTXt" => {
                if let Some(xmp) = png_itxt_xmp(data) {
                    metadata.xmp.push(xmp.to_vec());
                }
            }
            b"eXIf" if metadata.exif.is_none() => {
                metadata.exif = exif_payload(data);
            }
            b"tEXt" => png_raw_profile(data, &mut metadata),
            _ if kind[0].is_ascii_uppercase() => {
                // Unknown critical chunks make a PNG undecodable.
                return Err(ContainerError::corrupt(
                    F,
                    format!("unknown critical chunk '{name}' at offset {pos}"),
                ));
            }
            _ => {}
        }
        pos += 12 + data_len;
    }
}

/// Validates IHDR and returns (width, height, colour type).
fn parse_ihdr(data: &[u8]) -> Result<(u32, u32, u8), ContainerError> {
    const F: ImageFormat = ImageFormat::Png;
    let [
        w0,
        w1,
        w2,
        w3,
        h0,
        h1,
        h2,
        h3,
        depth,
        colour,
        compression,
        filter,
        interlace,
    ] = <[u8; 13]>::try_from(data).map_err(|_| {
        ContainerError::corrupt(
            F,
            format!("IHDR chunk has {} bytes instead of 13", data.len()),
        )
    })?;
    let width = u32::from_be_bytes([w0, w1, w2, w3]);
    let height = u32::from_be_bytes([h0, h1, h2, h3]);
    if width == 0 || height == 0 || width > 0x7FFF_FFFF || height > 0x7FFF_FFFF {
        return Err(ContainerError::corrupt(
            F,
            format!("IHDR gives an invalid size of {width}x{height}"),
        ));
    }
    let depth_ok = match colour {
        0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(depth, 8 | 16),
        _ => false,
    };
    if !depth_ok {
        return Err(ContainerError::corrupt(
            F,
            format!("IHDR gives an invalid colour type {colour} with bit depth {depth}"),
        ));
    }
    if compression != 0 || filter != 0 || interlace > 1 {
        return Err(ContainerError::corrupt(
            F,
            "IHDR names an unknown compression, filter or interlace method",
        ));
    }
    Ok((width, height, colour))
}

/// Uncompressed XMP from an iTXt chunk; compressed XMP is skipped.
fn png_itxt_xmp(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(PNG_XMP_KEYWORD)?.strip_prefix(b"\0")?;
    let (&compressed, rest) = rest.split_first()?;
    let (_method, rest) = rest.split_first()?;
    if compressed != 0 {
        return None;
    }
    let language_end = rest.iter().position(|&c| c == 0)?;
    let rest = rest.get(language_end + 1..)?;
    let translated_end = rest.iter().position(|&c| c == 0)?;
    rest.get(translated_end + 1..)
}

/// ImageMagick-style hex "Raw profile type ..." in an uncompressed tEXt chunk.
fn png_raw_profile(data: &[u8], metadata: &mut EmbeddedMetadata) {
    let Some(keyword_end) = data.iter().position(|&c| c == 0) else {
        return;
    };
    let (Some(keyword), Some(text)) = (data.get(..keyword_end), data.get(keyword_end + 1..)) else {
        return;
    };
    let Some(kind) = keyword.strip_prefix(b"Raw profile type ") else {
        return;
    };
    let wanted = match kind {
        b"exif" | b"APP1" => metadata.exif.is_none(),
        b"iptc" | b"8bim" => metadata.iptc_iim.is_none(),
        b"xmp" => true,
        _ => false,
    };
    if !wanted {
        return;
    }
    let Some(profile) = decode_raw_profile(text) else {
        return;
    };
    match kind {
        b"exif" | b"APP1" => metadata.exif = exif_payload(&profile),
        b"xmp" => metadata.xmp.push(profile),
        _ => {
            metadata.iptc_iim = if profile.first() == Some(&0x1C) {
                Some(profile)
            } else {
                photoshop_iptc(&profile).map(<[u8]>::to_vec)
            };
        }
    }
}

/// Decodes "\n<name>\n<spaces><decimal length>\n<hex digits, whitespace ignored>".
fn decode_raw_profile(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.trim_ascii_start();
    let name_end = text.iter().position(|&c| c == b'\n')?;
    let rest = text.get(name_end + 1..)?.trim_ascii_start();
    let digits_end = rest
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let length: usize = std::str::from_utf8(rest.get(..digits_end)?)
        .ok()?
        .parse()
        .ok()?;
    let hex = rest.get(digits_end..)?;
    // Never trust the declared length further than the text can back it.
    if length == 0 || length > hex.len() / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(length);
    let mut high: Option<u8> = None;
    for &c in hex.iter().filter(|c| !c.is_ascii_whitespace()) {
        let nibble = char::from(c).to_digit(16)? as u8;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => {
                out.push(h << 4 | nibble);
                if out.len() == length {
                    return Some(out);
                }
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// WebP.

fn inspect_webp(b: &[u8]) -> Result<ContainerInfo, ContainerError> {
    const F: ImageFormat = ImageFormat::WebP;
    let riff_size = u64::from(le32(b, 4).unwrap_or(0));
    if riff_size < 4 {
        return Err(ContainerError::corrupt(
            F,
            format!("RIFF header declares an invalid size of {riff_size} bytes"),
        ));
    }
    let riff_end = riff_size + 8;
    if riff_end > b.len() as u64 {
        return Err(ContainerError::truncated(
            F,
            format!(
                "RIFF header declares {riff_end} bytes but the file has only {}",
                b.len()
            ),
        ));
    }
    let riff_end = riff_end as usize;

    let mut pos = 12usize;
    let mut size: Option<(u32, u32)> = None;
    let mut extended = false;
    let mut has_image_data = false;
    let mut metadata = EmbeddedMetadata::default();
    let mut index = 0usize;
    while pos < riff_end {
        let header = b.get(pos..riff_end).filter(|rest| rest.len() >= 8);
        let (Some(kind), Some(len)) = (
            header.and_then(|h| array::<4>(h, 0)),
            header.and_then(|h| le32(h, 4)),
        ) else {
            return Err(ContainerError::corrupt(
                F,
                format!("chunk header at offset {pos} is cut off by the end of the RIFF data"),
            ));
        };
        let name = fourcc(&kind);
        let data_end = (pos as u64 + 8) + u64::from(len);
        if data_end > riff_end as u64 {
            let detail = format!(
                "chunk '{name}' at offset {pos} declares {len} bytes but only {} remain",
                riff_end - pos - 8
            );
            return Err(if data_end > b.len() as u64 {
                ContainerError::truncated(F, detail)
            } else {
                ContainerError::corrupt(F, detail)
            });
        }
        let data = b.get(pos + 8..data_end as usize).unwrap_or(&[]);
        match (&kind, index) {
            (b"VP8X", 0) => {
                let (Some(width), Some(height)) = (le24(data, 4), le24(data, 7)) else {
                    return Err(ContainerError::corrupt(F, "VP8X chunk is too short"));
                };
                extended = true;
                size = Some((width + 1, height + 1));
            }
            (b"VP8 ", _) => {
                let dims = parse_vp8(data)?;
                has_image_data = true;
                if !extended {
                    size = size.or(Some(dims));
                }
            }
            (b"VP8L", _) => {
                let dims = parse_vp8l(data)?;
                has_image_data = true;
                if !extended {
                    size = size.or(Some(dims));
                }
            }
            (b"ANMF", _) => has_image_data = true,
            (b"EXIF", _) if metadata.exif.is_none() => {
                metadata.exif = exif_payload(data);
            }
            (b"XMP ", _) => metadata.xmp.push(data.to_vec()),
            (_, 0) => {
                return Err(ContainerError::corrupt(
                    F,
                    format!("the first chunk is '{name}'; expected VP8, VP8L or VP8X"),
                ));
            }
            _ => {}
        }
        // Chunks are padded to an even size; the last pad byte may be missing.
        pos = (data_end as usize + (len & 1) as usize).min(riff_end);
        index += 1;
    }
    let (Some((width, height)), true) = (size, has_image_data) else {
        return Err(ContainerError::corrupt(
            F,
            "no image data (no VP8, VP8L or ANMF chunk)",
        ));
    };
    Ok(ContainerInfo {
        format: F,
        width,
        height,
        quarter_turns: 0,
        metadata,
    })
}

/// Lossy bitstream: frame tag, start code, 14-bit width and height.
fn parse_vp8(data: &[u8]) -> Result<(u32, u32), ContainerError> {
    const F: ImageFormat = ImageFormat::WebP;
    let (Some(tag), Some(width), Some(height)) = (le24(data, 0), le16(data, 6), le16(data, 8))
    else {
        return Err(ContainerError::corrupt(F, "VP8 chunk is too short"));
    };
    if tag & 1 != 0 {
        return Err(ContainerError::corrupt(F, "VP8 data is not a key frame"));
    }
    if data.get(3..6) != Some(b"\x9d\x01\x2a") {
        return Err(ContainerError::corrupt(F, "VP8 data has no start code"));
    }
    let partition = (tag >> 5) as usize;
    if partition > data.len().saturating_sub(10) {
        return Err(ContainerError::corrupt(
            F,
            "VP8 first partition is larger than its chunk",
        ));
    }
    let (width, height) = (u32::from(width & 0x3FFF), u32::from(height & 0x3FFF));
    if width == 0 || height == 0 {
        return Err(ContainerError::corrupt(
            F,
            format!("VP8 frame header gives a size of {width}x{height}"),
        ));
    }
    Ok((width, height))
}

/// Lossless bitstream: signature 0x2f, then 14-bit width-1 and height-1.
fn parse_vp8l(data: &[u8]) -> Result<(u32, u32), ContainerError> {
    const F: ImageFormat = ImageFormat::WebP;
    let (Some(0x2F), Some(bits)) = (data.first(), le32(data, 1)) else {
        return Err(ContainerError::corrupt(
            F,
            "VP8L chunk has no valid signature",
        ));
    };
    if bits >> 29 != 0 {
        return Err(ContainerError::corrupt(
            F,
            "VP8L data has an unknown version number",
        ));
    }
    Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
}

// ---------------------------------------------------------------------------
// TIFF.

/// The most IFDs followed in a chain; real files have a handful.
const MAX_TIFF_IFDS: usize = 256;

const TAG_NEW_SUBFILE_TYPE: u16 = 254;
const TAG_IMAGE_WIDTH: u16 = 256;
const TAG_IMAGE_LENGTH: u16 = 257;
const TAG_STRIP_OFFSETS: u16 = 273;
const TAG_STRIP_BYTE_COUNTS: u16 = 279;
const TAG_TILE_OFFSETS: u16 = 324;
const TAG_TILE_BYTE_COUNTS: u16 = 325;
const TAG_SUB_IFDS: u16 = 330;
const TAG_XMP: u16 = 700;
const TAG_IPTC: u16 = 33723;
const TAG_PHOTOSHOP: u16 = 34377;
const TAG_DNG_VERSION: u16 = 50706;

#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        match self {
            Endian::Little => le16(b, at),
            Endian::Big => be16(b, at),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        match self {
            Endian::Little => le32(b, at),
            Endian::Big => be32(b, at),
        }
    }

    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        array::<8>(b, at).map(match self {
            Endian::Little => u64::from_le_bytes,
            Endian::Big => u64::from_be_bytes,
        })
    }
}

#[derive(Clone, Copy)]
struct IfdEntry {
    tag: u16,
    kind: u16,
    count: u32,
    /// Absolute offset of the entry's 4-byte value/offset field.
    value_at: usize,
}

struct Ifd {
    entries_at: usize,
    count: usize,
    next: u32,
}

impl Ifd {
    fn entries<'b>(&self, b: &'b [u8], e: Endian) -> impl Iterator<Item = IfdEntry> + 'b {
        let at = self.entries_at;
        (0..self.count).filter_map(move |i| {
            let entry = at + 12 * i;
            Some(IfdEntry {
                tag: e.u16(b, entry)?,
                kind: e.u16(b, entry + 2)?,
                count: e.u32(b, entry + 4)?,
                value_at: entry + 8,
            })
        })
    }

    fn find(&self, b: &[u8], e: Endian, tag: u16) -> Option<IfdEntry> {
        self.entries(b, e).find(|entry| entry.tag == tag)
    }
}

fn tiff_type_size(kind: u16) -> Option<u64> {
    match kind {
        1 | 2 | 6 | 7 => Some(1),
        3 | 8 => Some(2),
        4 | 9 | 11 | 13 => Some(4),
        5 | 10 | 12 | 16 | 17 | 18 => Some(8),
        _ => None,
    }
}

fn read_ifd(b: &[u8], e: Endian, offset: u32) -> Result<Ifd, ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let at = offset as usize;
    let Some(count) = e.u16(b, at) else {
        return Err(ContainerError::truncated(
            F,
            format!(
                "image directory at offset {offset} lies beyond the end of the file ({} bytes)",
                b.len()
            ),
        ));
    };
    if count == 0 {
        return Err(ContainerError::corrupt(
            F,
            format!("image directory at offset {offset} has no entries"),
        ));
    }
    let entries_at = at + 2;
    let entries_end = entries_at.saturating_add(12 * usize::from(count));
    if entries_end > b.len() {
        return Err(ContainerError::truncated(
            F,
            format!(
                "image directory at offset {offset} ({count} entries) extends beyond the end of the file ({} bytes)",
                b.len()
            ),
        ));
    }
    // Some writers omit the next-IFD pointer of the last IFD at the very end.
    let next = e.u32(b, entries_end).unwrap_or(0);
    Ok(Ifd {
        entries_at,
        count: usize::from(count),
        next,
    })
}

/// The bytes of a tag's value, inline or at its offset.
fn tiff_value(b: &[u8], e: Endian, entry: IfdEntry) -> Result<&[u8], ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let tag = entry.tag;
    let Some(unit) = tiff_type_size(entry.kind) else {
        return Err(ContainerError::corrupt(
            F,
            format!("tag {tag} has an unknown field type {}", entry.kind),
        ));
    };
    let size = unit * u64::from(entry.count);
    if size <= 4 {
        return slice_at(b, entry.value_at as u64, size).ok_or_else(|| {
            ContainerError::truncated(F, format!("tag {tag} is cut off by the end of the file"))
        });
    }
    let offset = u64::from(e.u32(b, entry.value_at).unwrap_or(u32::MAX));
    slice_at(b, offset, size).ok_or_else(|| {
        ContainerError::truncated(
            F,
            format!("the data of tag {tag} ({size} bytes at offset {offset}) lies beyond the end of the file ({} bytes)", b.len()),
        )
    })
}

/// The `index`-th unsigned integer of a BYTE/SHORT/LONG/LONG8 value.
fn tiff_uint(value: &[u8], e: Endian, kind: u16, index: usize) -> Option<u64> {
    match kind {
        1 => value.get(index).map(|&v| u64::from(v)),
        3 => e.u16(value, index.checked_mul(2)?).map(u64::from),
        4 => e.u32(value, index.checked_mul(4)?).map(u64::from),
        16 => e.u64(value, index.checked_mul(8)?),
        _ => None,
    }
}

fn tiff_dimension(
    b: &[u8],
    e: Endian,
    ifd: &Ifd,
    tag: u16,
    what: &str,
) -> Result<u32, ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let entry = ifd.find(b, e, tag).ok_or_else(|| {
        ContainerError::corrupt(F, format!("the first image directory has no {what}"))
    })?;
    let value = tiff_value(b, e, entry)?;
    match (entry.kind, tiff_uint(value, e, entry.kind, 0)) {
        (3 | 4, Some(n)) if n > 0 => Ok(n as u32),
        _ => Err(ContainerError::corrupt(
            F,
            format!("invalid {what} in the first image directory"),
        )),
    }
}

/// Checks that every strip (or tile) lies inside the file. Returns whether
/// the offset/byte-count pair was present.
fn check_tiff_blocks(
    b: &[u8],
    e: Endian,
    ifd: &Ifd,
    offsets_tag: u16,
    counts_tag: u16,
    what: &str,
) -> Result<bool, ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let (offsets, counts) = match (ifd.find(b, e, offsets_tag), ifd.find(b, e, counts_tag)) {
        (None, None) => return Ok(false),
        (Some(offsets), Some(counts)) => (offsets, counts),
        _ => {
            return Err(ContainerError::corrupt(
                F,
                format!("{what} offsets and {what} byte counts must both be present"),
            ));
        }
    };
    if offsets.count != counts.count || offsets.count == 0 {
        return Err(ContainerError::corrupt(
            F,
            format!(
                "{} {what} offsets but {} {what} byte counts",
                offsets.count, counts.count
            ),
        ));
    }
    let (offset_values, count_values) = (tiff_value(b, e, offsets)?, tiff_value(b, e, counts)?);
    for i in 0..offsets.count as usize {
        let (Some(start), Some(len)) = (
            tiff_uint(offset_values, e, offsets.kind, i),
            tiff_uint(count_values, e, counts.kind, i),
        ) else {
            return Err(ContainerError::corrupt(
                F,
                format!("{what} offsets or byte counts have an invalid field type"),
            ));
        };
        if start
            .checked_add(len)
            .is_none_or(|end| end > b.len() as u64)
        {
            return Err(ContainerError::truncated(
                F,
                format!(
                    "{what} {} of {} ({len} bytes at offset {start}) lies beyond the end of the file ({} bytes)",
                    i + 1,
                    offsets.count,
                    b.len()
                ),
            ));
        }
    }
    Ok(true)
}

fn inspect_tiff(b: &[u8]) -> Result<ContainerInfo, ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let e = if b.starts_with(b"II") {
        Endian::Little
    } else {
        Endian::Big
    };
    let Some(first) = e.u32(b, 4) else {
        return Err(ContainerError::truncated(
            F,
            "the file ends inside the TIFF header",
        ));
    };
    if first == 0 {
        return Err(ContainerError::corrupt(
            F,
            "the header points to no image directory",
        ));
    }

    // Walk the whole IFD chain so that a loop or a cut-off directory is caught.
    let ifd0 = read_ifd(b, e, first)?;
    let mut visited = vec![first];
    let mut next = ifd0.next;
    while next != 0 {
        if visited.contains(&next) {
            return Err(ContainerError::corrupt(
                F,
                format!("the image directory chain loops back to offset {next}"),
            ));
        }
        if visited.len() >= MAX_TIFF_IFDS {
            return Err(ContainerError::corrupt(
                F,
                format!("more than {MAX_TIFF_IFDS} image directories"),
            ));
        }
        visited.push(next);
        next = read_ifd(b, e, next)?.next;
    }

    if ifd0.find(b, e, TAG_DNG_VERSION).is_some() {
        return Err(ContainerError::Unsupported("DNG raw image".into()));
    }
    let reduced = ifd0
        .find(b, e, TAG_NEW_SUBFILE_TYPE)
        .and_then(|entry| tiff_uint(tiff_value(b, e, entry).ok()?, e, entry.kind, 0))
        .is_some_and(|flags| flags & 1 != 0);
    if reduced && ifd0.find(b, e, TAG_SUB_IFDS).is_some() {
        return Err(ContainerError::Unsupported(
            "camera raw image (TIFF-based, with the full-size image in a sub-directory)".into(),
        ));
    }

    let width = tiff_dimension(b, e, &ifd0, TAG_IMAGE_WIDTH, "image width (tag 256)")?;
    let height = tiff_dimension(b, e, &ifd0, TAG_IMAGE_LENGTH, "image length (tag 257)")?;
    let strips = check_tiff_blocks(
        b,
        e,
        &ifd0,
        TAG_STRIP_OFFSETS,
        TAG_STRIP_BYTE_COUNTS,
        "strip",
    )?;
    let tiles = check_tiff_blocks(b, e, &ifd0, TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS, "tile")?;
    if !strips && !tiles {
        return Err(ContainerError::corrupt(
            F,
            "no image data (the first image directory has neither strip nor tile offsets)",
        ));
    }

    let mut metadata = EmbeddedMetadata {
        // The file itself is TIFF-structured EXIF: IFD0 plus its Exif IFD.
        exif: Some(b.to_vec()),
        ..EmbeddedMetadata::default()
    };
    // Metadata tags are optional: a damaged one loses the metadata, not the image.
    if let Some(xmp) = ifd0
        .find(b, e, TAG_XMP)
        .and_then(|entry| tiff_value(b, e, entry).ok())
    {
        metadata.xmp.push(xmp.to_vec());
    }
    metadata.iptc_iim = ifd0
        .find(b, e, TAG_IPTC)
        .and_then(|entry| tiff_value(b, e, entry).ok())
        .or_else(|| {
            let resources = tiff_value(b, e, ifd0.find(b, e, TAG_PHOTOSHOP)?).ok()?;
            photoshop_iptc(resources)
        })
        .map(<[u8]>::to_vec);

    Ok(ContainerInfo {
        format: F,
        width,
        height,
        quarter_turns: 0,
        metadata,
    })
}

// ---------------------------------------------------------------------------
// HEIF / AVIF (ISO base media file format).

#[derive(Clone, Copy)]
struct BoxHeader {
    kind: [u8; 4],
    start: usize,
    /// Offset of the payload (after size, type, largesize and uuid).
    body: usize,
    end: usize,
}

enum BoxProblem {
    /// Fewer bytes left than a box header needs.
    Header,
    /// A size smaller than the header itself.
    BadSize(u64),
    /// A size larger than what is left.
    Overrun(u64),
}

/// Reads the box header at `at`; the box must end at or before `limit`.
fn read_box(b: &[u8], at: usize, limit: usize) -> Result<BoxHeader, (Option<[u8; 4]>, BoxProblem)> {
    let avail = limit.saturating_sub(at);
    let (Some(size32), Some(kind)) = (be32(b, at), array::<4>(b, at + 4)) else {
        return Err((None, BoxProblem::Header));
    };
    if avail < 8 {
        return Err((None, BoxProblem::Header));
    }
    let (size, mut header_len) = match size32 {
        0 => (avail as u64, 8usize),
        1 => match be64(b, at + 8) {
            Some(large) if avail >= 16 => (large, 16),
            _ => return Err((Some(kind), BoxProblem::Header)),
        },
        n => (u64::from(n), 8),
    };
    if &kind == b"uuid" {
        header_len += 16;
    }
    if avail < header_len {
        return Err((Some(kind), BoxProblem::Header));
    }
    if size < header_len as u64 {
        return Err((Some(kind), BoxProblem::BadSize(size)));
    }
    if size > avail as u64 {
        return Err((Some(kind), BoxProblem::Overrun(size)));
    }
    Ok(BoxHeader {
        kind,
        start: at,
        body: at + header_len,
        end: at + size as usize,
    })
}

/// The child boxes of `[start, end)`; a malformed child is a corrupt file.
fn child_boxes<'b>(
    b: &'b [u8],
    start: usize,
    end: usize,
    parent: &'static str,
    format: ImageFormat,
) -> impl Iterator<Item = Result<BoxHeader, ContainerError>> + 'b {
    let mut pos = start;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        match read_box(b, pos, end) {
            Ok(header) => {
                pos = header.end;
                Some(Ok(header))
            }
            Err((kind, problem)) => {
                let at = pos;
                pos = end; // stop after reporting
                let name =
                    kind.map_or_else(|| "box".to_owned(), |k| format!("box '{}'", fourcc(&k)));
                let detail = match problem {
                    BoxProblem::Header => format!(
                        "{name} header at offset {at} is cut off by the end of its parent '{parent}'"
                    ),
                    BoxProblem::BadSize(size) => {
                        format!("{name} at offset {at} declares an invalid size of {size} bytes")
                    }
                    BoxProblem::Overrun(size) => format!(
                        "{name} at offset {at} declares {size} bytes but only {} remain in its parent '{parent}'",
                        end - at
                    ),
                };
                Some(Err(ContainerError::corrupt(format, detail)))
            }
        }
    })
}

/// A bounds-checked big-endian reader over one box payload.
struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
    end: usize,
}

impl<'b> Reader<'b> {
    fn new(buf: &'b [u8], start: usize, end: usize) -> Self {
        Reader {
            buf,
            pos: start,
            end: end.min(buf.len()),
        }
    }

    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let stop = self.pos.checked_add(n)?;
        if stop > self.end {
            return None;
        }
        let bytes = self.buf.get(self.pos..stop)?;
        self.pos = stop;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        be16(self.take(2)?, 0)
    }

    fn u32(&mut self) -> Option<u32> {
        be32(self.take(4)?, 0)
    }

    fn fourcc(&mut self) -> Option<[u8; 4]> {
        self.take(4)?.try_into().ok()
    }

    /// An unsigned integer of 0, 4 or 8 bytes (iloc field sizes).
    fn uint(&mut self, size: u8) -> Option<u64> {
        match size {
            0 => Some(0),
            4 => self.u32().map(u64::from),
            8 => be64(self.take(8)?, 0),
            _ => None,
        }
    }

    /// An item id: 16 bits in version 0 boxes, 32 bits otherwise.
    fn item_id(&mut self, wide: bool) -> Option<u32> {
        if wide {
            self.u32()
        } else {
            self.u16().map(u32::from)
        }
    }

    /// A NUL-terminated string; an unterminated one runs to the end.
    fn cstr(&mut self) -> &'b [u8] {
        let rest = self.buf.get(self.pos..self.end).unwrap_or(&[]);
        let len = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        self.pos = (self.pos + len + 1).min(self.end);
        rest.get(..len).unwrap_or(&[])
    }

    /// The version and flags of a full box.
    fn full_box(&mut self) -> Option<(u8, u32)> {
        let word = self.u32()?;
        Some(((word >> 24) as u8, word & 0x00FF_FFFF))
    }
}

/// Upper bounds on the HEIF item tables. Real files have at most a few
/// hundred items; the bounds keep hostile files from costing more than a
/// bounded amount of memory and time.
const MAX_HEIF_ENTRIES: usize = 1 << 16;
const MAX_HEIF_EXTENTS: usize = 1 << 20;

struct HeifItem {
    kind: [u8; 4],
    content_type: Vec<u8>,
    content_encoding: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Extent {
    offset: u64,
    len: u64,
}

struct ItemLocation {
    construction_method: u8,
    data_reference: u16,
    extents: Vec<Extent>,
}

enum Property {
    Ispe { width: u32, height: u32 },
    Irot(u8),
    HvcC { nal_length_size: u8 },
    Other,
}

/// Where an item's extents point: the file itself or the `idat` box.
struct ItemSource<'b> {
    bytes: &'b [u8],
    /// Offset of `bytes` in the file, for messages.
    base: usize,
    in_idat: bool,
}

impl<'b> ItemSource<'b> {
    /// The bytes of one extent; a length of 0 means "to the end of the source".
    fn extent(&self, extent: Extent) -> Option<&'b [u8]> {
        let len = if extent.len == 0 {
            (self.bytes.len() as u64).checked_sub(extent.offset)?
        } else {
            extent.len
        };
        slice_at(self.bytes, extent.offset, len)
    }
}

/// The parsed item tables of the `meta` box, keyed by item id. The first
/// declaration of an id wins.
#[derive(Default)]
struct HeifMeta {
    primary: Option<u32>,
    /// Item ids in file order.
    item_order: Vec<u32>,
    items: BTreeMap<u32, HeifItem>,
    locations: BTreeMap<u32, ItemLocation>,
    extent_count: usize,
    properties: Vec<Property>,
    /// Item id -> 1-based property indices.
    associations: BTreeMap<u32, Vec<u16>>,
    association_count: usize,
    /// (reference type, from item) -> to items.
    references: BTreeMap<([u8; 4], u32), Vec<u32>>,
    reference_count: usize,
    idat: Option<(usize, usize)>,
}

fn is_derived_image(kind: &[u8; 4]) -> bool {
    matches!(kind, b"grid" | b"iden" | b"iovl")
}

fn is_metadata_item(kind: &[u8; 4]) -> bool {
    matches!(kind, b"Exif" | b"mime" | b"uri ")
}

impl HeifMeta {
    fn properties_of(&self, id: u32) -> impl Iterator<Item = &Property> {
        self.associations
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|&index| self.properties.get(usize::from(index).checked_sub(1)?))
    }

    fn references_from(&self, kind: [u8; 4], id: u32) -> &[u32] {
        self.references.get(&(kind, id)).map_or(&[], Vec::as_slice)
    }

    /// Where an item's data lives; `None` for data this module does not read
    /// (in another file, or built by construction method 2).
    fn source<'b>(
        &self,
        b: &'b [u8],
        id: u32,
        loc: &ItemLocation,
        f: ImageFormat,
    ) -> Result<Option<ItemSource<'b>>, ContainerError> {
        if loc.data_reference != 0 {
            return Ok(None);
        }
        match loc.construction_method {
            0 => Ok(Some(ItemSource {
                bytes: b,
                base: 0,
                in_idat: false,
            })),
            1 => {
                let (start, end) = self.idat.ok_or_else(|| {
                    ContainerError::corrupt(
                        f,
                        format!("item {id} is stored in an 'idat' box but there is none"),
                    )
                })?;
                Ok(Some(ItemSource {
                    bytes: b.get(start..end).unwrap_or(&[]),
                    base: start,
                    in_idat: true,
                }))
            }
            2 => Ok(None),
            method => Err(ContainerError::corrupt(
                f,
                format!("item {id} uses unknown construction method {method}"),
            )),
        }
    }

    /// Checks that every extent of an item lies inside its source.
    fn check_bounds(
        &self,
        b: &[u8],
        id: u32,
        loc: &ItemLocation,
        f: ImageFormat,
    ) -> Result<(), ContainerError> {
        let Some(source) = self.source(b, id, loc, f)? else {
            return Ok(());
        };
        for &extent in &loc.extents {
            if source.extent(extent).is_none() {
                let at = extent.offset.saturating_add(source.base as u64);
                return Err(if source.in_idat {
                    ContainerError::corrupt(
                        f,
                        format!(
                            "item {id} data at offset {at} ({} bytes) lies outside its 'idat' box ({} bytes)",
                            extent.len,
                            source.bytes.len()
                        ),
                    )
                } else {
                    ContainerError::truncated(
                        f,
                        format!(
                            "item {id} data at offset {at} ({} bytes) lies beyond the end of the file ({} bytes)",
                            extent.len,
                            b.len()
                        ),
                    )
                });
            }
        }
        Ok(())
    }

    /// The byte ranges holding an item's data, in order (bounds already checked).
    fn parts<'b>(
        &self,
        b: &'b [u8],
        id: u32,
        f: ImageFormat,
    ) -> Result<Option<Vec<&'b [u8]>>, ContainerError> {
        let Some(loc) = self.locations.get(&id) else {
            return Ok(None);
        };
        let Some(source) = self.source(b, id, loc, f)? else {
            return Ok(None);
        };
        Ok(loc
            .extents
            .iter()
            .map(|&extent| source.extent(extent))
            .collect())
    }
}

fn inspect_isobmff(b: &[u8], brand_format: ImageFormat) -> Result<ContainerInfo, ContainerError> {
    let f = brand_format;
    // Every top-level box must fit in the file; remember the first 'meta'.
    let mut meta_box = None;
    let mut pos = 0usize;
    while pos < b.len() {
        let header = read_box(b, pos, b.len()).map_err(|(kind, problem)| {
            let name = kind.map_or_else(|| "a box".to_owned(), |k| format!("box '{}'", fourcc(&k)));
            match problem {
                BoxProblem::Header => ContainerError::truncated(
                    f,
                    format!("the file ends inside the header of {name} at offset {pos}"),
                ),
                BoxProblem::BadSize(size) => ContainerError::corrupt(
                    f,
                    format!("{name} at offset {pos} declares an invalid size of {size} bytes"),
                ),
                BoxProblem::Overrun(size) => ContainerError::truncated(
                    f,
                    format!(
                        "{name} at offset {pos} declares {size} bytes but only {} remain",
                        b.len() - pos
                    ),
                ),
            }
        })?;
        if pos == 0 && &header.kind != b"ftyp" {
            return Err(ContainerError::corrupt(
                f,
                "the file does not start with an 'ftyp' box",
            ));
        }
        if &header.kind == b"meta" && meta_box.is_none() {
            meta_box = Some(header);
        }
        pos = header.end;
    }
    let Some(meta_box) = meta_box else {
        return Err(ContainerError::corrupt(
            f,
            "no 'meta' box, so no image items (an image sequence or video?)",
        ));
    };
    let meta = parse_meta(b, meta_box, f)?;

    // Every stored item must lie inside the file. This is what catches a
    // truncated file whose grid tiles or thumbnails are missing.
    for (&id, loc) in &meta.locations {
        meta.check_bounds(b, id, loc, f)?;
    }

    let primary_id = meta
        .primary
        .ok_or_else(|| ContainerError::corrupt(f, "no primary item (missing 'pitm' box)"))?;
    let primary = meta.items.get(&primary_id).ok_or_else(|| {
        ContainerError::corrupt(
            f,
            format!("primary item {primary_id} is not declared in 'iinf'"),
        )
    })?;
    if is_metadata_item(&primary.kind) {
        return Err(ContainerError::corrupt(
            f,
            format!(
                "primary item {primary_id} is not an image (type '{}')",
                fourcc(&primary.kind)
            ),
        ));
    }
    let (width, height) = meta
        .properties_of(primary_id)
        .find_map(|p| match *p {
            Property::Ispe { width, height } => Some((width, height)),
            _ => None,
        })
        .ok_or_else(|| {
            ContainerError::corrupt(
                f,
                format!("primary item {primary_id} has no image size ('ispe' property)"),
            )
        })?;
    if width == 0 || height == 0 {
        return Err(ContainerError::corrupt(
            f,
            format!("primary item {primary_id} has a size of {width}x{height}"),
        ));
    }
    let quarter_turns = meta
        .properties_of(primary_id)
        .find_map(|p| match *p {
            Property::Irot(turns) => Some(turns),
            _ => None,
        })
        .unwrap_or(0);

    // The coded images behind the primary (itself, or a grid's tiles).
    let mut coded = Vec::new();
    collect_coded_inputs(&meta, primary_id, 0, &mut BTreeSet::new(), &mut coded, f)?;
    let format = match coded
        .first()
        .and_then(|id| meta.items.get(id))
        .map(|item| &item.kind)
    {
        Some(b"av01") => ImageFormat::Avif,
        Some(b"hvc1" | b"hev1") => ImageFormat::Heif,
        _ => brand_format,
    };
    check_coded_items(b, &meta, &coded, format)?;

    let metadata = heif_metadata(b, &meta, primary_id, format)?;
    Ok(ContainerInfo {
        format,
        width,
        height,
        quarter_turns,
        metadata,
    })
}

/// Coded items must have data, and that data must be a well-formed sequence
/// of HEVC NAL units or AV1 OBUs. Items may share data (identical tiles), so
/// the bytes walked are capped at about the file size to keep the work linear.
fn check_coded_items(
    b: &[u8],
    meta: &HeifMeta,
    coded: &[u32],
    f: ImageFormat,
) -> Result<(), ContainerError> {
    let mut budget = b.len() as u64 + (1 << 20);
    for &id in coded {
        let Some(item) = meta.items.get(&id) else {
            continue;
        };
        let missing = || {
            ContainerError::corrupt(
                f,
                format!(
                    "image item {id} ('{}') has no data location in 'iloc'",
                    fourcc(&item.kind)
                ),
            )
        };
        if !meta.locations.contains_key(&id) {
            return Err(missing());
        }
        let Some(parts) = meta.parts(b, id, f)? else {
            continue;
        };
        let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if total == 0 {
            return Err(missing());
        }
        if total > budget {
            break;
        }
        budget -= total;
        let problem = match &item.kind {
            b"hvc1" | b"hev1" => {
                let nal_length_size = meta
                    .properties_of(id)
                    .find_map(|p| match *p {
                        Property::HvcC { nal_length_size } => Some(nal_length_size),
                        _ => None,
                    })
                    .unwrap_or(4);
                check_hevc_stream(&parts, total, nal_length_size)
                    .err()
                    .map(|e| ("HEVC", e))
            }
            b"av01" => check_av1_stream(&parts, total).err().map(|e| ("AV1", e)),
            _ => None,
        };
        if let Some((codec, detail)) = problem {
            return Err(ContainerError::corrupt(
                f,
                format!("image item {id} is not a valid {codec} bitstream: {detail}"),
            ));
        }
    }
    Ok(())
}

/// The coded (non-derived) image items that `id` is built from.
fn collect_coded_inputs(
    meta: &HeifMeta,
    id: u32,
    depth: usize,
    visited: &mut BTreeSet<u32>,
    out: &mut Vec<u32>,
    f: ImageFormat,
) -> Result<(), ContainerError> {
    if !visited.insert(id) {
        return Ok(());
    }
    let item = meta.items.get(&id).ok_or_else(|| {
        ContainerError::corrupt(
            f,
            format!("image item {id} is referenced but not declared in 'iinf'"),
        )
    })?;
    if is_metadata_item(&item.kind) {
        return Err(ContainerError::corrupt(
            f,
            format!(
                "item {id} is used as an image but has type '{}'",
                fourcc(&item.kind)
            ),
        ));
    }
    if !is_derived_image(&item.kind) {
        out.push(id);
        return Ok(());
    }
    if depth >= 8 {
        return Err(ContainerError::corrupt(
            f,
            "derived image items are nested too deeply",
        ));
    }
    let inputs = meta.references_from(*b"dimg", id);
    if inputs.is_empty() {
        return Err(ContainerError::corrupt(
            f,
            format!(
                "derived image item {id} ('{}') has no input images ('dimg' reference)",
                fourcc(&item.kind)
            ),
        ));
    }
    for &input in inputs {
        collect_coded_inputs(meta, input, depth + 1, visited, out, f)?;
    }
    Ok(())
}

fn parse_meta(b: &[u8], meta_box: BoxHeader, f: ImageFormat) -> Result<HeifMeta, ContainerError> {
    let mut meta = HeifMeta::default();
    // 'meta' is a full box: skip version and flags.
    for child in child_boxes(b, meta_box.body + 4, meta_box.end, "meta", f) {
        let child = child?;
        let bad = |what: &str| {
            ContainerError::corrupt(
                f,
                format!(
                    "malformed '{}' box at offset {}: {what}",
                    fourcc(&child.kind),
                    child.start
                ),
            )
        };
        let mut r = Reader::new(b, child.body, child.end);
        match &child.kind {
            b"hdlr" => {
                let handler = r.full_box().and_then(|_| r.u32()).and_then(|_| r.fourcc());
                match handler {
                    Some(h) if &h == b"pict" => {}
                    Some(h) => {
                        return Err(ContainerError::NotAnImage(format!(
                            "ISO media file whose metadata handler is '{}', not a HEIF image",
                            fourcc(&h)
                        )));
                    }
                    None => return Err(bad("too short")),
                }
            }
            b"pitm" => {
                let (version, _) = r.full_box().ok_or_else(|| bad("too short"))?;
                meta.primary = Some(r.item_id(version != 0).ok_or_else(|| bad("too short"))?);
            }
            b"iinf" => {
                let (version, _) = r.full_box().ok_or_else(|| bad("too short"))?;
                // The entry count is not trusted; the child boxes are.
                if version == 0 {
                    r.u16().map(u32::from)
                } else {
                    r.u32()
                }
                .ok_or_else(|| bad("too short"))?;
                for entry in child_boxes(b, r.pos, child.end, "iinf", f) {
                    let entry = entry?;
                    if &entry.kind != b"infe" {
                        continue;
                    }
                    let Some((id, item)) = parse_infe(b, entry) else {
                        continue;
                    };
                    if meta.items.len() >= MAX_HEIF_ENTRIES {
                        return Err(bad("too many items"));
                    }
                    if let Entry::Vacant(slot) = meta.items.entry(id) {
                        slot.insert(item);
                        meta.item_order.push(id);
                    }
                }
            }
            b"iloc" => parse_iloc(&mut r, &mut meta).map_err(bad)?,
            b"iprp" => {
                for part in child_boxes(b, child.body, child.end, "iprp", f) {
                    let part = part?;
                    match &part.kind {
                        b"ipco" => {
                            for property in child_boxes(b, part.body, part.end, "ipco", f) {
                                if meta.properties.len() >= MAX_HEIF_ENTRIES {
                                    return Err(bad("too many item properties"));
                                }
                                meta.properties.push(parse_property(b, property?));
                            }
                        }
                        b"ipma" => {
                            let mut r = Reader::new(b, part.body, part.end);
                            parse_ipma(&mut r, &mut meta).map_err(|what| {
                                ContainerError::corrupt(
                                    f,
                                    format!(
                                        "malformed 'ipma' box at offset {}: {what}",
                                        part.start
                                    ),
                                )
                            })?;
                        }
                        _ => {}
                    }
                }
            }
            b"iref" => {
                let (version, _) = r.full_box().ok_or_else(|| bad("too short"))?;
                for reference in child_boxes(b, r.pos, child.end, "iref", f) {
                    let reference = reference?;
                    let mut rr = Reader::new(b, reference.body, reference.end);
                    let malformed = || {
                        ContainerError::corrupt(
                            f,
                            format!(
                                "malformed '{}' reference at offset {}",
                                fourcc(&reference.kind),
                                reference.start
                            ),
                        )
                    };
                    let from = rr.item_id(version != 0).ok_or_else(malformed)?;
                    let count = rr.u16().ok_or_else(malformed)?;
                    meta.reference_count += usize::from(count);
                    if meta.reference_count > MAX_HEIF_EXTENTS {
                        return Err(bad("too many item references"));
                    }
                    let targets = meta.references.entry((reference.kind, from)).or_default();
                    for _ in 0..count {
                        targets.push(rr.item_id(version != 0).ok_or_else(malformed)?);
                    }
                }
            }
            b"idat" => meta.idat = Some((child.body, child.end)),
            _ => {}
        }
    }
    let property_count = meta.properties.len();
    if let Some(index) = meta
        .associations
        .values()
        .flatten()
        .find(|&&index| usize::from(index) > property_count)
    {
        return Err(ContainerError::corrupt(
            f,
            format!("'ipma' refers to property {index} but 'ipco' holds only {property_count}"),
        ));
    }
    Ok(meta)
}

/// An item info entry (versions 2 and 3 carry the item type; older ones are skipped).
fn parse_infe(b: &[u8], entry: BoxHeader) -> Option<(u32, HeifItem)> {
    let mut r = Reader::new(b, entry.body, entry.end);
    let (version, _) = r.full_box()?;
    if version < 2 {
        return None;
    }
    let id = r.item_id(version != 2)?;
    let _protection_index = r.u16()?;
    let kind = r.fourcc()?;
    let _name = r.cstr();
    let (content_type, content_encoding) = if &kind == b"mime" {
        (r.cstr().to_vec(), r.cstr().to_vec())
    } else {
        (Vec::new(), Vec::new())
    };
    Some((
        id,
        HeifItem {
            kind,
            content_type,
            content_encoding,
        },
    ))
}

const SHORT_BOX: &str = "entries run past the end of the box";

/// Item locations, versions 0 to 2.
fn parse_iloc(r: &mut Reader<'_>, meta: &mut HeifMeta) -> Result<(), &'static str> {
    let (version, _) = r.full_box().ok_or(SHORT_BOX)?;
    if version > 2 {
        return Err("unknown version");
    }
    let sizes = r.u16().ok_or(SHORT_BOX)?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 0xF) as u8;
    let base_offset_size = ((sizes >> 4) & 0xF) as u8;
    let index_size = if version == 0 { 0 } else { (sizes & 0xF) as u8 };
    if [offset_size, length_size, base_offset_size, index_size]
        .iter()
        .any(|s| !matches!(s, 0 | 4 | 8))
    {
        return Err("invalid field size");
    }
    let count = if version < 2 {
        r.u16().map(u32::from)
    } else {
        r.u32()
    }
    .ok_or(SHORT_BOX)?;
    for _ in 0..count {
        let id = r.item_id(version == 2).ok_or(SHORT_BOX)?;
        let construction_method = if version == 0 {
            0
        } else {
            (r.u16().ok_or(SHORT_BOX)? & 0xF) as u8
        };
        let data_reference = r.u16().ok_or(SHORT_BOX)?;
        let base_offset = r.uint(base_offset_size).ok_or(SHORT_BOX)?;
        let extent_count = r.u16().ok_or(SHORT_BOX)?;
        if extent_count > 0 && offset_size == 0 && length_size == 0 && index_size == 0 {
            // Zero-byte extents would let a few bytes declare millions of them.
            return Err("extents without offset or length fields");
        }
        meta.extent_count += usize::from(extent_count);
        if meta.extent_count > MAX_HEIF_EXTENTS || meta.locations.len() >= MAX_HEIF_ENTRIES {
            return Err("too many items or extents");
        }
        let mut extents = Vec::new();
        for _ in 0..extent_count {
            r.uint(index_size).ok_or(SHORT_BOX)?;
            let offset = r.uint(offset_size).ok_or(SHORT_BOX)?;
            let len = r.uint(length_size).ok_or(SHORT_BOX)?;
            extents.push(Extent {
                offset: base_offset.saturating_add(offset),
                len,
            });
        }
        meta.locations.entry(id).or_insert(ItemLocation {
            construction_method,
            data_reference,
            extents,
        });
    }
    Ok(())
}

/// Item-to-property associations (7-bit or, with flag 1, 15-bit indices).
fn parse_ipma(r: &mut Reader<'_>, meta: &mut HeifMeta) -> Result<(), &'static str> {
    let (version, flags) = r.full_box().ok_or(SHORT_BOX)?;
    let count = r.u32().ok_or(SHORT_BOX)?;
    for _ in 0..count {
        let id = r.item_id(version != 0).ok_or(SHORT_BOX)?;
        let n = r.u8().ok_or(SHORT_BOX)?;
        meta.association_count += 1;
        if meta.association_count > MAX_HEIF_ENTRIES {
            return Err("too many entries");
        }
        let indices = meta.associations.entry(id).or_default();
        for _ in 0..n {
            let index = if flags & 1 != 0 {
                r.u16().ok_or(SHORT_BOX)? & 0x7FFF
            } else {
                u16::from(r.u8().ok_or(SHORT_BOX)? & 0x7F)
            };
            if index != 0 {
                indices.push(index);
            }
        }
    }
    Ok(())
}

fn parse_property(b: &[u8], property: BoxHeader) -> Property {
    let mut r = Reader::new(b, property.body, property.end);
    let parsed = match &property.kind {
        b"ispe" => r.full_box().and_then(|_| {
            Some(Property::Ispe {
                width: r.u32()?,
                height: r.u32()?,
            })
        }),
        b"irot" => r.u8().map(|angle| Property::Irot(angle & 3)),
        b"hvcC" => r
            .take(22)
            .and_then(|config| config.get(21))
            .map(|&byte| Property::HvcC {
                nal_length_size: (byte & 3) + 1,
            }),
        _ => None,
    };
    parsed.unwrap_or(Property::Other)
}

/// A forward-only reader over data split into several byte ranges.
struct ChainedReader<'a, 'b> {
    parts: &'a [&'b [u8]],
    part: usize,
    offset: usize,
}

impl<'a, 'b> ChainedReader<'a, 'b> {
    fn new(parts: &'a [&'b [u8]]) -> Self {
        ChainedReader {
            parts,
            part: 0,
            offset: 0,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        loop {
            let part = self.parts.get(self.part)?;
            if let Some(&byte) = part.get(self.offset) {
                self.offset += 1;
                return Some(byte);
            }
            self.part += 1;
            self.offset = 0;
        }
    }

    /// Moves forward `n` bytes; the caller has checked that they exist.
    fn skip(&mut self, mut n: u64) {
        while let Some(part) = self.parts.get(self.part) {
            let left = (part.len() - self.offset.min(part.len())) as u64;
            if n < left {
                self.offset += n as usize;
                return;
            }
            n -= left;
            self.part += 1;
            self.offset = 0;
        }
    }
}

/// HEVC samples are NAL units, each prefixed by its big-endian length. The
/// prefixes must tile the data exactly.
fn check_hevc_stream(parts: &[&[u8]], total: u64, nal_length_size: u8) -> Result<(), String> {
    if !matches!(nal_length_size, 1 | 2 | 4) {
        return Err(format!(
            "invalid NAL length size {nal_length_size} in 'hvcC'"
        ));
    }
    let size = u64::from(nal_length_size);
    let mut reader = ChainedReader::new(parts);
    let mut at = 0u64;
    while at < total {
        let remain = total - at;
        if remain < size {
            return Err(format!("{remain} stray bytes after the last NAL unit"));
        }
        let mut len = 0u64;
        for _ in 0..size {
            len = len << 8 | u64::from(reader.byte().unwrap_or(0));
        }
        if len == 0 {
            return Err(format!("empty NAL unit at byte {at}"));
        }
        if len > remain - size {
            return Err(format!(
                "NAL unit at byte {at} declares {len} bytes but only {} remain",
                remain - size
            ));
        }
        if reader.byte().is_some_and(|header| header & 0x80 != 0) {
            return Err(format!("NAL unit at byte {at} has its forbidden bit set"));
        }
        reader.skip(len - 1);
        at += size + len;
    }
    Ok(())
}

/// AV1 item data is a sequence of OBUs; their size fields must tile the data.
fn check_av1_stream(parts: &[&[u8]], total: u64) -> Result<(), String> {
    let mut reader = ChainedReader::new(parts);
    let mut at = 0u64;
    while at < total {
        let header = reader.byte().unwrap_or(0);
        if header & 0x80 != 0 {
            return Err(format!("OBU at byte {at} has its forbidden bit set"));
        }
        let mut next = at + 1;
        if header & 0x04 != 0 {
            reader.byte(); // extension header
            next += 1;
        }
        if header & 0x02 == 0 {
            // No size field: the OBU runs to the end of the data.
            return Ok(());
        }
        let mut size = 0u64;
        let mut terminated = false;
        for i in 0..8u64 {
            let Some(byte) = reader.byte() else { break };
            next += 1;
            size |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                terminated = true;
                break;
            }
        }
        if !terminated || next > total {
            return Err(format!("OBU at byte {at} has a cut-off size field"));
        }
        if size > total - next {
            return Err(format!(
                "OBU at byte {at} declares {size} bytes but only {} remain",
                total - next
            ));
        }
        reader.skip(size);
        at = next + size;
    }
    Ok(())
}

/// EXIF and XMP items; the ones describing the primary item ('cdsc') come first.
/// Items may share data, so the bytes copied are capped at the file size.
fn heif_metadata(
    b: &[u8],
    meta: &HeifMeta,
    primary: u32,
    f: ImageFormat,
) -> Result<EmbeddedMetadata, ContainerError> {
    let describes_primary = |id: u32| meta.references_from(*b"cdsc", id).contains(&primary);
    let mut candidates: Vec<(u32, &HeifItem)> = meta
        .item_order
        .iter()
        .filter_map(|id| Some((*id, meta.items.get(id)?)))
        .filter(|(_, item)| matches!(&item.kind, b"Exif" | b"mime"))
        .collect();
    candidates.sort_by_key(|(id, _)| !describes_primary(*id)); // stable: file order otherwise

    let mut budget = b.len();
    let mut metadata = EmbeddedMetadata::default();
    for (id, item) in candidates {
        let is_xmp = &item.kind == b"mime"
            && item
                .content_type
                .eq_ignore_ascii_case(b"application/rdf+xml")
            && item.content_encoding.is_empty();
        let is_exif = &item.kind == b"Exif" && metadata.exif.is_none();
        if !is_xmp && !is_exif {
            continue;
        }
        let Some(parts) = meta.parts(b, id, f)? else {
            continue;
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > budget {
            break;
        }
        budget -= total;
        let data = parts.concat();
        if is_xmp {
            metadata.xmp.push(data);
        } else {
            // A 4-byte offset to the TIFF header, then (after optional bytes
            // such as "Exif\0\0") the TIFF header itself.
            metadata.exif = be32(&data, 0)
                .and_then(|skip| data.get(4usize.checked_add(usize::try_from(skip).ok()?)?..))
                .and_then(exif_payload);
        }
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    // -- helpers -------------------------------------------------------------

    fn assert_message_style(err: &ContainerError) {
        let text = err.to_string();
        assert!(!text.ends_with('.'), "message ends with a period: {text}");
        assert!(
            text.chars().next().is_some_and(|c| c.is_lowercase()),
            "message must start lowercase: {text}"
        );
    }

    #[track_caller]
    fn expect_ok(bytes: &[u8]) -> ContainerInfo {
        match inspect(bytes) {
            Ok(info) => info,
            Err(e) => panic!("expected Ok, got {e}"),
        }
    }

    #[track_caller]
    fn expect_truncated(bytes: &[u8], needle: &str) -> String {
        match inspect(bytes) {
            Err(e @ ContainerError::Truncated { .. }) => {
                assert_message_style(&e);
                let text = e.to_string();
                assert!(
                    text.contains(needle),
                    "{text:?} does not contain {needle:?}"
                );
                text
            }
            other => panic!("expected Truncated ({needle}), got {other:?}"),
        }
    }

    #[track_caller]
    fn expect_corrupt(bytes: &[u8], needle: &str) -> String {
        match inspect(bytes) {
            Err(e @ ContainerError::Corrupt { .. }) => {
                assert_message_style(&e);
                let text = e.to_string();
                assert!(
                    text.contains(needle),
                    "{text:?} does not contain {needle:?}"
                );
                text
            }
            other => panic!("expected Corrupt ({needle}), got {other:?}"),
        }
    }

    #[track_caller]
    fn expect_not_image(bytes: &[u8], needle: &str) {
        match inspect(bytes) {
            Err(e @ ContainerError::NotAnImage(_)) => {
                assert_message_style(&e);
                assert!(
                    e.to_string().contains(needle),
                    "{e} does not contain {needle:?}"
                );
            }
            other => panic!("expected NotAnImage ({needle}), got {other:?}"),
        }
    }

    #[track_caller]
    fn expect_unsupported(bytes: &[u8], needle: &str) {
        match inspect(bytes) {
            Err(e @ ContainerError::Unsupported(_)) => {
                assert_message_style(&e);
                assert!(
                    e.to_string().contains(needle),
                    "{e} does not contain {needle:?}"
                );
            }
            other => panic!("expected Unsupported ({needle}), got {other:?}"),
        }
    }

    const TIFF_BE: &[u8] = b"MM\0*\0\0\0\x08\0\0\0\0\0\0";

    // -- JPEG builders -------------------------------------------------------

    fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, code];
        out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn sof(code: u8, width: u16, height: u16) -> Vec<u8> {
        let mut payload = vec![8];
        payload.extend_from_slice(&height.to_be_bytes());
        payload.extend_from_slice(&width.to_be_bytes());
        payload.extend_from_slice(&[1, 1, 0x11, 0]);
        segment(code, &payload)
    }

    fn sos() -> Vec<u8> {
        segment(SOS, &[1, 1, 0x00, 0, 63, 0])
    }

    /// Entropy data with stuffed bytes, a restart marker and fill bytes.
    const SCAN: &[u8] = &[
        0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD1, 0x78,
    ];

    fn jpeg_with(segments: &[Vec<u8>], scan: &[u8], eoi: bool) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        out.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        for s in segments {
            out.extend_from_slice(s);
        }
        out.extend(sof(0xC0, 320, 240));
        out.extend(segment(0xC4, &[0; 17]));
        out.extend(sos());
        out.extend_from_slice(scan);
        if eoi {
            out.extend_from_slice(&[0xFF, 0xD9]);
        }
        out
    }

    fn photoshop_app13(iim: &[u8]) -> Vec<u8> {
        let mut payload = PHOTOSHOP_APP13_ID.to_vec();
        // An unrelated resource with an odd-length name and odd-length data.
        payload.extend_from_slice(b"8BIM\x04\x25\x03abc\0\0\0\x03xyz\0");
        payload.extend_from_slice(b"8BIM\x04\x04\0\0");
        payload.extend_from_slice(&u32::try_from(iim.len()).unwrap().to_be_bytes());
        payload.extend_from_slice(iim);
        if iim.len() % 2 == 1 {
            payload.push(0);
        }
        segment(APP13, &payload)
    }

    fn extended_xmp(guid: &[u8; 32], full: &[u8], offset: usize, len: usize) -> Vec<u8> {
        let mut payload = XMP_EXT_APP1_ID.to_vec();
        payload.extend_from_slice(guid);
        payload.extend_from_slice(&u32::try_from(full.len()).unwrap().to_be_bytes());
        payload.extend_from_slice(&u32::try_from(offset).unwrap().to_be_bytes());
        payload.extend_from_slice(&full[offset..offset + len]);
        segment(APP1, &payload)
    }

    // -- PNG builders --------------------------------------------------------

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[4..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn ihdr(width: u32, height: u32) -> Vec<u8> {
        let mut data = width.to_be_bytes().to_vec();
        data.extend_from_slice(&height.to_be_bytes());
        data.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(b"IHDR", &data)
    }

    fn png_with(width: u32, height: u32, extra: &[Vec<u8>], iend: bool) -> Vec<u8> {
        let mut out = PNG_SIGNATURE.to_vec();
        out.extend(ihdr(width, height));
        for c in extra {
            out.extend_from_slice(c);
        }
        out.extend(chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ));
        if iend {
            out.extend(chunk(b"IEND", &[]));
        }
        out
    }

    // -- WebP builders -------------------------------------------------------

    fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_vec();
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    fn webp(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_le_bytes());
        out.extend_from_slice(b"WEBP");
        out.extend(body);
        out
    }

    fn vp8(width: u16, height: u16) -> Vec<u8> {
        let mut data = vec![0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a]; // key frame, partition 10
        data.extend_from_slice(&width.to_le_bytes());
        data.extend_from_slice(&height.to_le_bytes());
        data.extend_from_slice(&[0; 12]);
        riff_chunk(b"VP8 ", &data)
    }

    fn vp8l(width: u32, height: u32) -> Vec<u8> {
        let bits = (width - 1) | ((height - 1) << 14);
        let mut data = vec![0x2F];
        data.extend_from_slice(&bits.to_le_bytes());
        data.extend_from_slice(&[0; 3]);
        riff_chunk(b"VP8L", &data)
    }

    fn vp8x(width: u32, height: u32) -> Vec<u8> {
        let mut data = vec![0x0C, 0, 0, 0];
        data.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
        data.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
        riff_chunk(b"VP8X", &data)
    }

    // -- TIFF builder --------------------------------------------------------

    /// (tag, type, count, value bytes in file order); values over 4 bytes are
    /// placed after the IFD.
    type Tag = (u16, u16, u32, Vec<u8>);

    fn tiff(little: bool, tags: &[Tag], pixel_data: &[u8]) -> Vec<u8> {
        let u16b = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let u32b = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut out: Vec<u8> = if little {
            b"II*\0".to_vec()
        } else {
            b"MM\0*".to_vec()
        };
        out.extend_from_slice(&u32b(8));
        let ifd_len = 2 + 12 * tags.len() + 4;
        let mut extra: Vec<u8> = Vec::new();
        let extra_at = 8 + ifd_len;
        out.extend_from_slice(&u16b(u16::try_from(tags.len()).unwrap()));
        for (tag, kind, count, value) in tags {
            out.extend_from_slice(&u16b(*tag));
            out.extend_from_slice(&u16b(*kind));
            out.extend_from_slice(&u32b(*count));
            if value.len() <= 4 {
                let mut v = value.clone();
                v.resize(4, 0);
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(&u32b(u32::try_from(extra_at + extra.len()).unwrap()));
                extra.extend_from_slice(value);
            }
        }
        out.extend_from_slice(&u32b(0));
        out.extend(extra);
        out.extend_from_slice(pixel_data);
        out
    }

    /// A minimal strip TIFF; the strip starts at `strip_at`, which the caller
    /// computes (`data_offset` of the returned layout).
    fn simple_tiff(
        little: bool,
        width: u32,
        height: u16,
        strip_len: u32,
        extra: &[Tag],
        data: &[u8],
    ) -> Vec<u8> {
        let u16v = |v: u16| {
            if little {
                v.to_le_bytes().to_vec()
            } else {
                v.to_be_bytes().to_vec()
            }
        };
        let u32v = |v: u32| {
            if little {
                v.to_le_bytes().to_vec()
            } else {
                v.to_be_bytes().to_vec()
            }
        };
        let build = |strip_at: u32| {
            let mut tags: Vec<Tag> = vec![
                (256, 4, 1, u32v(width)),
                (257, 3, 1, u16v(height)),
                (273, 4, 1, u32v(strip_at)),
                (279, 4, 1, u32v(strip_len)),
            ];
            tags.extend_from_slice(extra);
            tags.sort_by_key(|t| t.0);
            tiff(little, &tags, data)
        };
        let probe = build(0);
        build(u32::try_from(probe.len() - data.len()).unwrap())
    }

    // -- HEIF builders -------------------------------------------------------

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(payload.len() + 8)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn full(kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
        let mut body = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        body.extend_from_slice(payload);
        bx(kind, &body)
    }

    fn infe(id: u16, kind: &[u8; 4], content_type: &[u8]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(kind);
        p.push(0); // empty name
        if kind == b"mime" {
            p.extend_from_slice(content_type);
            p.push(0);
        }
        full(b"infe", 2, 0, &p)
    }

    struct HeifItemSpec<'a> {
        id: u16,
        kind: &'a [u8; 4],
        content_type: &'a [u8],
        data: &'a [u8],
    }

    struct HeifSpec<'a> {
        major: &'a [u8; 4],
        compatible: &'a [&'a [u8; 4]],
        primary: Option<u16>,
        items: Vec<HeifItemSpec<'a>>,
        /// ipco boxes, in order.
        properties: Vec<Vec<u8>>,
        /// (item, 1-based property indices)
        associations: Vec<(u16, Vec<u8>)>,
        /// (reference type, from, to)
        references: Vec<(&'a [u8; 4], u16, Vec<u16>)>,
        /// Added to every iloc offset (to point data outside the file).
        offset_bias: u32,
    }

    fn ispe(width: u32, height: u32) -> Vec<u8> {
        let mut p = width.to_be_bytes().to_vec();
        p.extend_from_slice(&height.to_be_bytes());
        full(b"ispe", 0, 0, &p)
    }

    fn hvcc() -> Vec<u8> {
        let mut p = vec![0u8; 23];
        p[0] = 1;
        p[21] = 0xF0 | 3; // NAL length size 4
        bx(b"hvcC", &p)
    }

    /// One IDR NAL unit with a 4-byte length prefix.
    const HEVC_DATA: &[u8] = &[0, 0, 0, 3, 0x26, 0x01, 0xAF];
    /// One frame OBU (type 6) with a size field.
    const AV1_DATA: &[u8] = &[0x32, 0x02, 0x10, 0x00];

    fn exif_item_data() -> Vec<u8> {
        let mut data = 6u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"Exif\0\0");
        data.extend_from_slice(TIFF_BE);
        data
    }

    fn heif_file(spec: &HeifSpec<'_>) -> Vec<u8> {
        let mut ftyp = spec.major.to_vec();
        ftyp.extend_from_slice(&[0; 4]);
        for brand in spec.compatible {
            ftyp.extend_from_slice(*brand);
        }
        let ftyp = bx(b"ftyp", &ftyp);

        let build_meta = |data_start: u32| {
            let mut children = full(b"hdlr", 0, 0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0");
            if let Some(primary) = spec.primary {
                children.extend(full(b"pitm", 0, 0, &primary.to_be_bytes()));
            }
            let mut iinf = u16::try_from(spec.items.len())
                .unwrap()
                .to_be_bytes()
                .to_vec();
            for item in &spec.items {
                iinf.extend(infe(item.id, item.kind, item.content_type));
            }
            children.extend(full(b"iinf", 0, 0, &iinf));
            // iloc v0: offset 4, length 4, base 0.
            let mut iloc = vec![0x44, 0x00];
            iloc.extend_from_slice(&u16::try_from(spec.items.len()).unwrap().to_be_bytes());
            let mut at = data_start + spec.offset_bias;
            let first_len = spec
                .items
                .first()
                .map_or(0, |i| u32::try_from(i.data.len()).unwrap());
            for item in &spec.items {
                iloc.extend_from_slice(&item.id.to_be_bytes());
                iloc.extend_from_slice(&[0, 0, 0, 1]);
                if item.data.is_empty() {
                    // Shares the first item's data.
                    iloc.extend_from_slice(&(data_start + spec.offset_bias).to_be_bytes());
                    iloc.extend_from_slice(&first_len.to_be_bytes());
                } else {
                    iloc.extend_from_slice(&at.to_be_bytes());
                    iloc.extend_from_slice(&u32::try_from(item.data.len()).unwrap().to_be_bytes());
                    at += u32::try_from(item.data.len()).unwrap();
                }
            }
            children.extend(full(b"iloc", 0, 0, &iloc));
            if !spec.references.is_empty() {
                let mut iref = Vec::new();
                for (kind, from, to) in &spec.references {
                    let mut p = from.to_be_bytes().to_vec();
                    p.extend_from_slice(&u16::try_from(to.len()).unwrap().to_be_bytes());
                    for t in to {
                        p.extend_from_slice(&t.to_be_bytes());
                    }
                    iref.extend(bx(kind, &p));
                }
                children.extend(full(b"iref", 0, 0, &iref));
            }
            let ipco = bx(b"ipco", &spec.properties.concat());
            let mut ipma = u32::try_from(spec.associations.len())
                .unwrap()
                .to_be_bytes()
                .to_vec();
            for (item, indices) in &spec.associations {
                ipma.extend_from_slice(&item.to_be_bytes());
                ipma.push(u8::try_from(indices.len()).unwrap());
                ipma.extend_from_slice(indices);
            }
            let mut iprp = ipco;
            iprp.extend(full(b"ipma", 0, 0, &ipma));
            children.extend(bx(b"iprp", &iprp));
            full(b"meta", 0, 0, &children)
        };
        let meta_len = build_meta(0).len();
        let data_start = u32::try_from(ftyp.len() + meta_len + 8).unwrap();
        let meta = build_meta(data_start);
        let mdat_payload: Vec<u8> = spec
            .items
            .iter()
            .flat_map(|i| i.data.iter().copied())
            .collect();
        [ftyp, meta, bx(b"mdat", &mdat_payload)].concat()
    }

    fn simple_heif_spec<'a>(codec: &'a [u8; 4], data: &'a [u8], exif: &'a [u8]) -> HeifSpec<'a> {
        HeifSpec {
            major: b"heic",
            compatible: &[b"mif1", b"heic"],
            primary: Some(1),
            items: vec![
                HeifItemSpec {
                    id: 1,
                    kind: codec,
                    content_type: b"",
                    data,
                },
                HeifItemSpec {
                    id: 2,
                    kind: b"Exif",
                    content_type: b"",
                    data: exif,
                },
                HeifItemSpec {
                    id: 3,
                    kind: b"mime",
                    content_type: b"application/rdf+xml",
                    data: b"<x:xmpmeta/>",
                },
            ],
            properties: vec![hvcc(), ispe(640, 480), bx(b"irot", &[1])],
            associations: vec![(1, vec![0x81, 2, 3])],
            references: vec![(b"cdsc", 2, vec![1]), (b"cdsc", 3, vec![1])],
            offset_bias: 0,
        }
    }

    // -- sniffing ------------------------------------------------------------

    #[test]
    fn empty_input_is_empty() {
        assert_eq!(inspect(&[]), Err(ContainerError::Empty));
        assert_eq!(ContainerError::Empty.to_string(), "empty file (0 bytes)");
    }

    #[test]
    fn non_images_are_named() {
        expect_not_image(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF document");
        expect_not_image(b"PK\x03\x04\x14\0\0\0\x08\0", "ZIP archive");
        expect_not_image(b"This is a plain text file.\nSecond line.\n", "plain text");
        expect_not_image("Grüße aus Köln\r\n".as_bytes(), "plain text");
        expect_not_image(
            b"<!DOCTYPE html>\n<html><body>404</body></html>",
            "HTML document",
        );
        expect_not_image(b"<?xml version=\"1.0\"?>\n<dataset/>", "XML document");
        expect_not_image(
            b"<?xpacket begin=\"\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>",
            "XMP metadata",
        );
        expect_not_image(b"RIFF\x24\0\0\0WAVEfmt ", "WAVE audio");
        expect_not_image(b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", "brand 'mp42'");
        expect_not_image(
            b"\x01\x02\x03\x04\x05\x06\x07",
            "unknown content (first bytes 01 02 03 04)",
        );
        expect_not_image(b"\x01\x02", "unknown content (first bytes 01 02)");
        // A JPEG whose SOI was zeroed is just unknown bytes.
        let mut jpeg = jpeg_with(&[], SCAN, true);
        jpeg[0] = 0;
        jpeg[1] = 0;
        assert_eq!(
            inspect(&jpeg),
            Err(ContainerError::NotAnImage(
                "unknown content (first bytes 00 00 ff e0)".into()
            ))
        );
    }

    #[test]
    fn recognised_but_unsupported_formats() {
        expect_unsupported(b"GIF89a\x01\0\x01\0\0\0\0;", "GIF");
        let mut bmp = b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0".to_vec();
        bmp.extend_from_slice(&[0; 40]);
        expect_unsupported(&bmp, "BMP");
        expect_unsupported(b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\x14ftypjp2 ", "JPEG 2000");
        expect_unsupported(b"\xff\x4f\xff\x51\0\x2f", "JPEG 2000");
        expect_unsupported(b"\xff\x0a\xfa\x7f", "JPEG XL");
        expect_unsupported(b"\0\0\0\x0cJXL \r\n\x87\n", "JPEG XL");
        expect_unsupported(b"8BPS\0\x01\0\0\0\0\0\0", "PSD");
        expect_unsupported(b"II*\0\x10\0\0\0CR\x02\0", "CR2");
        expect_unsupported(b"\0\0\0\x18ftypcrx \0\0\0\x01crx isom", "CR3");
        expect_unsupported(b"II+\0\x08\0\0\0", "BigTIFF");
    }

    #[test]
    fn format_names_and_mime_types() {
        let all = [
            (ImageFormat::Jpeg, "JPEG", "image/jpeg"),
            (ImageFormat::Png, "PNG", "image/png"),
            (ImageFormat::Tiff, "TIFF", "image/tiff"),
            (ImageFormat::WebP, "WebP", "image/webp"),
            (ImageFormat::Heif, "HEIF", "image/heif"),
            (ImageFormat::Avif, "AVIF", "image/avif"),
        ];
        for (format, name, mime) in all {
            assert_eq!(format.name(), name);
            assert_eq!(format.to_string(), name);
            assert_eq!(format.mime(), mime);
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    // -- JPEG ----------------------------------------------------------------

    #[test]
    fn jpeg_size_and_metadata() {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(TIFF_BE);
        let mut xmp = XMP_APP1_ID.to_vec();
        xmp.extend_from_slice(b"<x:xmpmeta/>");
        let iim = b"\x1c\x02\x00\x00\x02\x00\x04\x1c\x02\x05\x00\x03abc";
        let file = jpeg_with(
            &[
                segment(APP1, &exif),
                segment(APP1, &xmp),
                photoshop_app13(iim),
            ],
            SCAN,
            true,
        );
        let info = expect_ok(&file);
        assert_eq!(
            (info.format, info.width, info.height, info.quarter_turns),
            (ImageFormat::Jpeg, 320, 240, 0)
        );
        assert_eq!(info.metadata.exif.as_deref(), Some(TIFF_BE));
        assert_eq!(info.metadata.xmp, vec![b"<x:xmpmeta/>".to_vec()]);
        assert_eq!(info.metadata.iptc_iim.as_deref(), Some(&iim[..]));
    }

    #[test]
    fn jpeg_extended_xmp_is_reassembled_after_the_main_packet() {
        let mut main = XMP_APP1_ID.to_vec();
        main.extend_from_slice(b"<main/>");
        let guid = b"0123456789ABCDEF0123456789ABCDEF";
        let full = b"<extended>0123456789</extended>";
        // Out of order, with a duplicate chunk, plus an incomplete group.
        let file = jpeg_with(
            &[
                segment(APP1, &main),
                extended_xmp(guid, full, 10, full.len() - 10),
                extended_xmp(guid, full, 0, 10),
                extended_xmp(guid, full, 0, 10),
                extended_xmp(b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", full, 5, 5),
            ],
            SCAN,
            true,
        );
        let info = expect_ok(&file);
        assert_eq!(info.metadata.xmp, vec![b"<main/>".to_vec(), full.to_vec()]);
    }

    #[test]
    fn jpeg_exif_without_tiff_header_is_dropped() {
        let file = jpeg_with(&[segment(APP1, b"Exif\0\0garbage")], SCAN, true);
        assert_eq!(expect_ok(&file).metadata.exif, None);
    }

    #[test]
    fn jpeg_progressive_and_trailing_garbage() {
        let mut file = vec![0xFF, 0xD8];
        file.extend(sof(0xC2, 17, 9));
        file.extend(sos());
        file.extend_from_slice(SCAN);
        file.extend(segment(0xC4, &[0; 17]));
        file.extend(sos());
        file.extend_from_slice(SCAN);
        file.extend_from_slice(&[0xFF, 0xD9]);
        file.extend_from_slice(b"\0\xff\xd8 trailing garbage \xff\x02");
        let info = expect_ok(&file);
        assert_eq!((info.width, info.height), (17, 9));
    }

    #[test]
    fn jpeg_height_from_dnl() {
        let mut file = vec![0xFF, 0xD8];
        file.extend(sof(0xC0, 64, 0));
        file.extend(sos());
        file.extend_from_slice(SCAN);
        file.extend(segment(DNL, &48u16.to_be_bytes()));
        file.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(expect_ok(&file).height, 48);

        let mut without_dnl = vec![0xFF, 0xD8];
        without_dnl.extend(sof(0xC0, 64, 0));
        without_dnl.extend(sos());
        without_dnl.extend_from_slice(&[0xFF, 0xD9]);
        expect_corrupt(&without_dnl, "no DNL marker");
    }

    #[test]
    fn jpeg_truncations() {
        expect_truncated(
            &jpeg_with(&[], SCAN, false),
            "no end-of-image marker; the file ends inside the scan data",
        );
        let full = jpeg_with(&[], SCAN, true);
        expect_truncated(
            &full[..full.len() - 1],
            "the file ends inside the scan data",
        );
        // A segment whose length runs past the end of the file.
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(&[0; 100]);
        let file = jpeg_with(&[segment(APP1, &exif)], SCAN, true);
        expect_truncated(
            &file[..40],
            "APP1 segment at offset 20 declares 108 bytes but only 18 remain",
        );
        // Headers only.
        let mut headers = vec![0xFF, 0xD8];
        headers.extend(sof(0xC0, 8, 8));
        expect_truncated(&headers, "headers only, no image data");
        expect_truncated(&[0xFF, 0xD8, 0xFF], "headers only, no image data");
        expect_truncated(
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00],
            "the file ends inside the APP0 segment header",
        );
    }

    #[test]
    fn jpeg_corruptions() {
        let mut bad_scan = SCAN.to_vec();
        bad_scan.extend_from_slice(&[0xFF, 0x4F, 0x00]);
        let file = jpeg_with(&[], &bad_scan, true);
        let scan_start = file.len() - 2 - bad_scan.len();
        let offset = scan_start + SCAN.len();
        expect_corrupt(
            &file,
            &format!("invalid marker 0xFF4F at offset {offset} in scan data"),
        );

        let mut second_frame = SCAN.to_vec();
        second_frame.extend(sof(0xC1, 8, 8));
        expect_corrupt(
            &jpeg_with(&[], &second_frame, true),
            "invalid marker 0xFFC1 at offset",
        );

        let mut no_scan = vec![0xFF, 0xD8];
        no_scan.extend(sof(0xC0, 8, 8));
        no_scan.extend_from_slice(&[0xFF, 0xD9]);
        expect_corrupt(&no_scan, "headers only, no image data");

        expect_corrupt(&[0xFF, 0xD8, 0xFF, 0xD9], "headers only, no image data");

        let mut scan_first = vec![0xFF, 0xD8];
        scan_first.extend(sos());
        expect_corrupt(
            &scan_first,
            "start-of-scan at offset 2 comes before any frame header",
        );

        let mut zero_width = vec![0xFF, 0xD8];
        zero_width.extend(sof(0xC0, 0, 8));
        expect_corrupt(&zero_width, "width of 0");

        expect_corrupt(
            &[0xFF, 0xD8, 0xFF, 0x02, 0, 4, 0, 0],
            "invalid marker 0xFF02 at offset 2",
        );
        expect_corrupt(&[0xFF, 0xD8, 0xFF, 0xE1, 0, 1], "invalid length of 1 bytes");
        expect_corrupt(&[0xFF, 0xD8, 0xFF, 0xD8], "second start-of-image");

        let mut short_sos = vec![0xFF, 0xD8];
        short_sos.extend(sof(0xC0, 8, 8));
        short_sos.extend(segment(SOS, &[1, 1]));
        expect_corrupt(&short_sos, "malformed start-of-scan header");
    }

    // -- PNG -----------------------------------------------------------------

    fn itxt(keyword: &[u8], compressed: bool, text: &[u8]) -> Vec<u8> {
        let mut data = keyword.to_vec();
        data.extend_from_slice(&[0, u8::from(compressed), 0]);
        data.extend_from_slice(b"en\0\0");
        data.extend_from_slice(text);
        chunk(b"iTXt", &data)
    }

    #[test]
    fn png_size_and_metadata() {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(TIFF_BE);
        let raw_iptc = b"Raw profile type iptc\0\niptc\n      10\n1c0205000361626300ff\n";
        let file = png_with(
            1412,
            2077,
            &[
                itxt(PNG_XMP_KEYWORD, false, b"<x:xmpmeta/>"),
                itxt(PNG_XMP_KEYWORD, true, b"\x78\x9c compressed"),
                itxt(b"Comment", false, b"not xmp"),
                chunk(b"eXIf", &exif),
                chunk(b"tEXt", raw_iptc),
                chunk(b"tEXt", b"Title\0hello"),
            ],
            true,
        );
        let info = expect_ok(&file);
        assert_eq!(
            (info.format, info.width, info.height),
            (ImageFormat::Png, 1412, 2077)
        );
        assert_eq!(info.metadata.xmp, vec![b"<x:xmpmeta/>".to_vec()]);
        assert_eq!(info.metadata.exif.as_deref(), Some(TIFF_BE));
        assert_eq!(
            info.metadata.iptc_iim.as_deref(),
            Some(&b"\x1c\x02\x05\x00\x03abc\x00\xff"[..])
        );
    }

    #[test]
    fn png_raw_profile_exif() {
        let mut profile = b"Raw profile type exif\0\nexif\n      20\n457869660000".to_vec();
        profile.extend_from_slice(b"4d4d002a\n00000008000000000000\n");
        let file = png_with(4, 4, &[chunk(b"tEXt", &profile)], true);
        assert_eq!(expect_ok(&file).metadata.exif.as_deref(), Some(TIFF_BE));
    }

    #[test]
    fn png_trailing_bytes_after_iend_are_ignored() {
        let mut file = png_with(3, 5, &[], true);
        file.extend_from_slice(b"junk");
        assert_eq!(expect_ok(&file).width, 3);
    }

    #[test]
    fn png_errors() {
        let mut bad_crc = png_with(4, 4, &[], true);
        bad_crc[8 + 8 + 13] ^= 1; // IHDR CRC
        expect_corrupt(&bad_crc, "chunk 'IHDR' at offset 8 has a bad CRC");

        let mut bad_data = png_with(4, 4, &[], true);
        let idat_data = bad_data.len() - 12 - 12 + 8;
        bad_data[idat_data] ^= 0xFF;
        expect_corrupt(&bad_data, "chunk 'IDAT' at offset 33 has a bad CRC");

        expect_truncated(&png_with(4, 4, &[], false), "no IEND chunk");
        let full = png_with(4, 4, &[], true);
        expect_truncated(&full[..full.len() - 3], "chunk 'IEND' at offset");
        expect_truncated(
            &full[..45],
            "chunk 'IDAT' at offset 33 declares 20 bytes but only 12 remain",
        );
        expect_truncated(&full[..8], "right after the PNG signature");
        expect_truncated(&full[..12], "inside the chunk header");
        expect_truncated(&full[..33], "before any image data");

        let mut text_first = PNG_SIGNATURE.to_vec();
        text_first.extend(chunk(b"tEXt", b"a\0b"));
        text_first.extend(ihdr(4, 4));
        expect_corrupt(&text_first, "the first chunk is 'tEXt', not IHDR");

        let mut zero = PNG_SIGNATURE.to_vec();
        zero.extend(ihdr(0, 4));
        expect_corrupt(&zero, "invalid size of 0x4");

        let mut no_idat = PNG_SIGNATURE.to_vec();
        no_idat.extend(ihdr(4, 4));
        no_idat.extend(chunk(b"IEND", &[]));
        expect_corrupt(&no_idat, "no image data");

        let mut bad_type = PNG_SIGNATURE.to_vec();
        bad_type.extend(chunk(b"IH\0R", &[0; 13]));
        expect_corrupt(&bad_type, "invalid chunk type");

        let mut huge = PNG_SIGNATURE.to_vec();
        huge.extend_from_slice(b"\xff\xff\xff\xffIHDR");
        expect_corrupt(&huge, "invalid length");

        let critical = png_with(4, 4, &[chunk(b"ABCD", b"")], true);
        expect_corrupt(&critical, "unknown critical chunk 'ABCD'");

        let mut cgbi = PNG_SIGNATURE.to_vec();
        cgbi.extend(chunk(b"CgBI", &[0x50, 0, 0x20, 0x06]));
        expect_unsupported(&cgbi, "CgBI");
    }

    // -- WebP ----------------------------------------------------------------

    #[test]
    fn webp_variants() {
        let info = expect_ok(&webp(&[vp8(320, 240)]));
        assert_eq!(
            (info.format, info.width, info.height),
            (ImageFormat::WebP, 320, 240)
        );
        // The two scale bits are not part of the size.
        let info = expect_ok(&webp(&[vp8(0xC000 | 100, 0x4000 | 50)]));
        assert_eq!((info.width, info.height), (100, 50));
        let info = expect_ok(&webp(&[vp8l(16384, 1)]));
        assert_eq!((info.width, info.height), (16384, 1));

        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(TIFF_BE);
        let file = webp(&[
            vp8x(776, 909),
            vp8(776, 909),
            riff_chunk(b"EXIF", &exif),
            riff_chunk(b"XMP ", b"<x/>"),
        ]);
        let info = expect_ok(&file);
        assert_eq!((info.width, info.height), (776, 909));
        assert_eq!(info.metadata.exif.as_deref(), Some(TIFF_BE));
        assert_eq!(info.metadata.xmp, vec![b"<x/>".to_vec()]);
        // EXIF without the prefix, as the spec says.
        let file = webp(&[vp8x(8, 8), vp8l(8, 8), riff_chunk(b"EXIF", TIFF_BE)]);
        assert_eq!(expect_ok(&file).metadata.exif.as_deref(), Some(TIFF_BE));
        // Animated: image data lives in ANMF frames.
        let file = webp(&[
            vp8x(8, 8),
            riff_chunk(b"ANIM", &[0; 6]),
            riff_chunk(b"ANMF", &[0; 16]),
        ]);
        assert_eq!(expect_ok(&file).width, 8);
    }

    #[test]
    fn webp_errors() {
        let file = webp(&[vp8(320, 240)]);
        expect_truncated(
            &file[..file.len() - 1],
            "RIFF header declares 42 bytes but the file has only 41",
        );
        expect_truncated(b"RIFF\x10\0\0\0WEB", "inside the RIFF header");
        expect_corrupt(b"RIFF\x02\0\0\0WEBP", "invalid size of 2 bytes");
        expect_corrupt(
            &webp(&[riff_chunk(b"ICCP", &[0; 4])]),
            "the first chunk is 'ICCP'",
        );
        expect_corrupt(&webp(&[vp8x(8, 8)]), "no image data");
        expect_corrupt(&webp(&[]), "no image data");

        let mut not_key = vp8(8, 8);
        not_key[8] |= 1;
        expect_corrupt(&webp(&[not_key]), "not a key frame");
        let mut no_start = vp8(8, 8);
        no_start[11] = 0;
        expect_corrupt(&webp(&[no_start]), "no start code");
        let mut bad_lossless = vp8l(8, 8);
        bad_lossless[8] = 0;
        expect_corrupt(&webp(&[bad_lossless]), "VP8L chunk has no valid signature");

        // A chunk that claims more than the RIFF data holds.
        let mut overlong = webp(&[vp8(8, 8)]);
        overlong[16] = 0xFF;
        expect_truncated(
            &overlong,
            "chunk 'VP8 ' at offset 12 declares 255 bytes but only 22 remain",
        );
        overlong.extend_from_slice(&[0; 300]); // bytes after the RIFF data
        expect_corrupt(&overlong, "chunk 'VP8 ' at offset 12 declares 255 bytes");
    }

    // -- TIFF ----------------------------------------------------------------

    #[test]
    fn tiff_size_and_metadata() {
        for little in [true, false] {
            let iim = b"\x1c\x02\x05\x00\x06abcdef\0".to_vec(); // 3 LONGs
            let extra: Vec<Tag> = vec![
                (700, 1, 12, b"<x:xmpmeta/>".to_vec()),
                (33723, 4, 3, iim.clone()),
            ];
            let file = simple_tiff(little, 160, 120, 4, &extra, &[1, 2, 3, 4]);
            let info = expect_ok(&file);
            assert_eq!(
                (info.format, info.width, info.height),
                (ImageFormat::Tiff, 160, 120)
            );
            assert_eq!(info.metadata.exif.as_deref(), Some(&file[..]));
            assert_eq!(info.metadata.xmp, vec![b"<x:xmpmeta/>".to_vec()]);
            assert_eq!(info.metadata.iptc_iim, Some(iim));
        }
    }

    #[test]
    fn tiff_tiles_and_photoshop_iptc() {
        let mut resources = b"8BIM\x04\x04\0\0".to_vec();
        resources.extend_from_slice(&4u32.to_be_bytes());
        resources.extend_from_slice(b"\x1c\x02\x00\x00");
        let tags: Vec<Tag> = vec![
            (256, 3, 1, 64u16.to_be_bytes().to_vec()),
            (257, 3, 1, 32u16.to_be_bytes().to_vec()),
            (324, 4, 2, [0u32.to_be_bytes(), 4u32.to_be_bytes()].concat()),
            (325, 3, 2, [4u16.to_be_bytes(), 4u16.to_be_bytes()].concat()),
            (34377, 7, u32::try_from(resources.len()).unwrap(), resources),
        ];
        let info = expect_ok(&tiff(false, &tags, &[]));
        assert_eq!((info.width, info.height), (64, 32));
        assert_eq!(
            info.metadata.iptc_iim.as_deref(),
            Some(&b"\x1c\x02\x00\x00"[..])
        );
    }

    #[test]
    fn tiff_errors() {
        let file = simple_tiff(true, 8, 8, 64, &[], &[0; 64]);
        expect_truncated(&file[..file.len() - 1], "strip 1 of 1 (64 bytes at offset");
        expect_truncated(
            &file[..20],
            "image directory at offset 8 (4 entries) extends beyond the end",
        );
        expect_truncated(
            b"II*\0\x00\x10\0\0\0\0",
            "image directory at offset 4096 lies beyond the end of the file (10 bytes)",
        );
        expect_truncated(b"II*\0\x08\0", "inside the TIFF header");
        expect_corrupt(b"II*\0\0\0\0\0", "points to no image directory");
        expect_corrupt(b"II*\0\x08\0\0\0\0\0\0\0\0\0", "has no entries");

        // IFD0 points to itself as the next IFD.
        let mut looped = simple_tiff(true, 8, 8, 4, &[], &[0; 4]);
        let next_at = 8 + 2 + 12 * 4;
        looped[next_at..next_at + 4].copy_from_slice(&8u32.to_le_bytes());
        expect_corrupt(&looped, "loops back to offset 8");

        let no_width: Vec<Tag> = vec![
            (257, 3, 1, vec![8, 0]),
            (273, 4, 1, vec![0; 4]),
            (279, 4, 1, vec![0; 4]),
        ];
        expect_corrupt(&tiff(true, &no_width, &[]), "no image width");
        let no_strips: Vec<Tag> = vec![(256, 3, 1, vec![8, 0]), (257, 3, 1, vec![8, 0])];
        expect_corrupt(
            &tiff(true, &no_strips, &[]),
            "neither strip nor tile offsets",
        );
        let mismatched: Vec<Tag> = vec![
            (256, 3, 1, vec![8, 0]),
            (257, 3, 1, vec![8, 0]),
            (273, 4, 2, vec![0; 8]),
            (279, 4, 1, vec![0; 4]),
        ];
        expect_corrupt(
            &tiff(true, &mismatched, &[]),
            "2 strip offsets but 1 strip byte counts",
        );
        // A huge count must fail on the bounds check, not allocate.
        let huge: Vec<Tag> = vec![
            (256, 3, 1, vec![8, 0]),
            (257, 3, 1, vec![8, 0]),
            (273, 4, u32::MAX, vec![0xF0, 0, 0, 0]),
            (279, 4, u32::MAX, vec![0; 4]),
        ];
        expect_truncated(&tiff(true, &huge, &[]), "the data of tag 273");

        let dng: Vec<Tag> = vec![(256, 3, 1, vec![8, 0]), (50706, 1, 4, vec![1, 4, 0, 0])];
        expect_unsupported(&tiff(true, &dng, &[]), "DNG");
    }

    // -- HEIF / AVIF ---------------------------------------------------------

    #[test]
    fn heif_size_rotation_and_metadata() {
        let exif = exif_item_data();
        let file = heif_file(&simple_heif_spec(b"hvc1", HEVC_DATA, &exif));
        let info = expect_ok(&file);
        assert_eq!(
            (info.format, info.width, info.height, info.quarter_turns),
            (ImageFormat::Heif, 640, 480, 1)
        );
        assert_eq!(info.metadata.exif.as_deref(), Some(TIFF_BE));
        assert_eq!(info.metadata.xmp, vec![b"<x:xmpmeta/>".to_vec()]);
        assert_eq!(info.metadata.iptc_iim, None);

        // Exif item whose offset points straight at the TIFF header.
        let mut plain = 0u32.to_be_bytes().to_vec();
        plain.extend_from_slice(TIFF_BE);
        let info = expect_ok(&heif_file(&simple_heif_spec(b"hvc1", HEVC_DATA, &plain)));
        assert_eq!(info.metadata.exif.as_deref(), Some(TIFF_BE));
    }

    #[test]
    fn avif_is_told_apart_from_heif() {
        let exif = exif_item_data();
        let mut spec = simple_heif_spec(b"av01", AV1_DATA, &exif);
        spec.properties[0] = bx(b"av1C", &[0x81, 0, 0, 0]);
        spec.major = b"avif";
        spec.compatible = &[b"mif1", b"avif", b"miaf"];
        assert_eq!(expect_ok(&heif_file(&spec)).format, ImageFormat::Avif);
        // The coded item decides even when the major brand is generic.
        spec.major = b"mif1";
        spec.compatible = &[b"mif1", b"miaf"];
        assert_eq!(expect_ok(&heif_file(&spec)).format, ImageFormat::Avif);
    }

    #[test]
    fn heif_grid_checks_every_tile() {
        let exif = exif_item_data();
        let tile = HEVC_DATA;
        let spec = HeifSpec {
            items: vec![
                HeifItemSpec {
                    id: 10,
                    kind: b"hvc1",
                    content_type: b"",
                    data: tile,
                },
                HeifItemSpec {
                    id: 11,
                    kind: b"hvc1",
                    content_type: b"",
                    data: tile,
                },
                HeifItemSpec {
                    id: 20,
                    kind: b"grid",
                    content_type: b"",
                    data: &[0, 0, 0, 1, 0, 0x80, 0, 0x40],
                },
                HeifItemSpec {
                    id: 2,
                    kind: b"Exif",
                    content_type: b"",
                    data: &exif,
                },
            ],
            primary: Some(20),
            properties: vec![hvcc(), ispe(256, 256), ispe(512, 256), bx(b"irot", &[3])],
            associations: vec![(10, vec![0x81, 2]), (11, vec![0x81, 2]), (20, vec![3, 4])],
            references: vec![(b"dimg", 20, vec![10, 11]), (b"cdsc", 2, vec![20])],
            ..simple_heif_spec(b"hvc1", tile, &exif)
        };
        let info = expect_ok(&heif_file(&spec));
        assert_eq!((info.width, info.height, info.quarter_turns), (512, 256, 3));

        let broken_tile: &[u8] = &[0, 0, 0, 9, 0x26, 0x01, 0xAF];
        let mut bad = HeifSpec {
            items: Vec::new(),
            ..spec
        };
        bad.items = vec![
            HeifItemSpec {
                id: 10,
                kind: b"hvc1",
                content_type: b"",
                data: tile,
            },
            HeifItemSpec {
                id: 11,
                kind: b"hvc1",
                content_type: b"",
                data: broken_tile,
            },
            HeifItemSpec {
                id: 20,
                kind: b"grid",
                content_type: b"",
                data: &[0, 0, 0, 1, 0, 0x80, 0, 0x40],
            },
        ];
        expect_corrupt(
            &heif_file(&bad),
            "image item 11 is not a valid HEVC bitstream: NAL unit at byte 0 declares 9 bytes but only 3 remain",
        );
        bad.references = vec![(b"dimg", 20, vec![10, 12])];
        expect_corrupt(
            &heif_file(&bad),
            "image item 12 is referenced but not declared",
        );
        bad.references = vec![];
        expect_corrupt(
            &heif_file(&bad),
            "derived image item 20 ('grid') has no input images",
        );
    }

    #[test]
    fn heif_truncations() {
        let exif = exif_item_data();
        let file = heif_file(&simple_heif_spec(b"hvc1", HEVC_DATA, &exif));
        let mdat_at = file.len() - 8 - HEVC_DATA.len() - exif.len() - 12;
        let mdat_len = file.len() - mdat_at;
        expect_truncated(
            &file[..file.len() - 5],
            &format!(
                "box 'mdat' at offset {mdat_at} declares {mdat_len} bytes but only {} remain",
                mdat_len - 5
            ),
        );
        expect_truncated(
            &file[..mdat_at + 4],
            "the file ends inside the header of a box",
        );

        // The mdat box fits but an item points past the end.
        let mut spec = simple_heif_spec(b"hvc1", HEVC_DATA, &exif);
        spec.offset_bias = 1000;
        let text = expect_truncated(&heif_file(&spec), "item 1 data at offset");
        assert!(text.contains("lies beyond the end of the file"), "{text}");

        // 64-bit largesize beyond the file.
        let mut large = file[..mdat_at].to_vec();
        large.extend_from_slice(&[0, 0, 0, 1]);
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(1u64 << 40).to_be_bytes());
        expect_truncated(&large, "box 'mdat'");
        // Size 0 means "to the end of the file".
        let mut to_end = file.clone();
        to_end[mdat_at..mdat_at + 4].copy_from_slice(&[0; 4]);
        expect_ok(&to_end);
    }

    #[test]
    fn heif_corruptions() {
        let exif = exif_item_data();
        let mut spec = simple_heif_spec(b"hvc1", HEVC_DATA, &exif);
        spec.primary = None;
        expect_corrupt(&heif_file(&spec), "no primary item");

        let mut spec = simple_heif_spec(b"hvc1", HEVC_DATA, &exif);
        spec.associations = vec![(1, vec![0x81, 3])];
        expect_corrupt(
            &heif_file(&spec),
            "primary item 1 has no image size ('ispe' property)",
        );

        let mut spec = simple_heif_spec(b"hvc1", HEVC_DATA, &exif);
        spec.associations = vec![(1, vec![0x81, 9])];
        expect_corrupt(
            &heif_file(&spec),
            "'ipma' refers to property 9 but 'ipco' holds only 3",
        );

        let mut spec = simple_heif_spec(b"hvc1", HEVC_DATA, &exif);
        spec.primary = Some(7);
        expect_corrupt(&heif_file(&spec), "primary item 7 is not declared");

        let mut spec = simple_heif_spec(b"hvc1", HEVC_DATA, &exif);
        spec.primary = Some(2);
        expect_corrupt(
            &heif_file(&spec),
            "primary item 2 is not an image (type 'Exif')",
        );

        // Placeholder bytes instead of a bitstream (as in exiftool's QuickTime.heic).
        let spec = simple_heif_spec(b"hvc1", b"<dummy image data>", &exif);
        expect_corrupt(
            &heif_file(&spec),
            "image item 1 is not a valid HEVC bitstream",
        );
        let spec = simple_heif_spec(b"av01", &[0x32, 0x7F, 0], &exif);
        expect_corrupt(
            &heif_file(&spec),
            "image item 1 is not a valid AV1 bitstream",
        );

        let no_meta = bx(b"ftyp", b"heic\0\0\0\0mif1heic");
        expect_corrupt(
            &[no_meta.clone(), bx(b"mdat", b"x")].concat(),
            "no 'meta' box",
        );
        let mut bad_size = no_meta;
        bad_size.extend_from_slice(&[0, 0, 0, 4]);
        bad_size.extend_from_slice(b"free");
        expect_corrupt(
            &bad_size,
            "box 'free' at offset 24 declares an invalid size of 4 bytes",
        );

        // A child box overrunning its parent inside 'meta'.
        let file = heif_file(&simple_heif_spec(b"hvc1", HEVC_DATA, &exif));
        let hdlr_at = file.windows(4).position(|w| w == b"hdlr").unwrap() - 4;
        let mut overrun = file.clone();
        overrun[hdlr_at..hdlr_at + 4].copy_from_slice(&0x1000u32.to_be_bytes());
        expect_corrupt(&overrun, "box 'hdlr' at offset");
    }

    #[test]
    fn hostile_heif_tables_stay_bounded() {
        // One 200 KB NAL unit shared by 4000 grid tiles and 4000 XMP items:
        // copying or re-walking it per item would cost 800 MB and more.
        let mut big = 200_000u32.to_be_bytes().to_vec();
        big.push(0x26);
        big.resize(4 + 200_000, 0);
        let mut items = vec![HeifItemSpec {
            id: 1,
            kind: b"hvc1",
            content_type: b"",
            data: &big,
        }];
        let tiles: Vec<u16> = (100..4100).collect();
        for &id in &tiles {
            items.push(HeifItemSpec {
                id,
                kind: b"hvc1",
                content_type: b"",
                data: b"",
            });
        }
        for id in 5000..9000 {
            items.push(HeifItemSpec {
                id,
                kind: b"mime",
                content_type: b"application/rdf+xml",
                data: b"",
            });
        }
        items.push(HeifItemSpec {
            id: 20,
            kind: b"grid",
            content_type: b"",
            data: &[0, 0, 0, 1, 0, 0x80, 0, 0x40],
        });
        let mut associations: Vec<(u16, Vec<u8>)> =
            tiles.iter().map(|&t| (t, vec![0x81])).collect();
        associations.push((20, vec![2]));
        let spec = HeifSpec {
            major: b"heic",
            compatible: &[b"mif1", b"heic"],
            primary: Some(20),
            items,
            properties: vec![hvcc(), ispe(8000, 8000)],
            associations,
            references: vec![(b"dimg", 20, tiles.clone())],
            offset_bias: 0,
        };
        let file = heif_file(&spec);
        let started = std::time::Instant::now();
        let info = expect_ok(&file);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let copied: usize = info.metadata.xmp.iter().map(Vec::len).sum();
        assert!(
            copied <= file.len(),
            "copied {copied} bytes of metadata from a {}-byte file",
            file.len()
        );

        // iloc fields of zero bytes would let each extent cost no input at all.
        let iloc_at = file.windows(4).position(|w| w == b"iloc").unwrap();
        let mut zero_sizes = file.clone();
        zero_sizes[iloc_at + 8] = 0;
        expect_corrupt(&zero_sizes, "malformed 'iloc' box");
    }

    // -- robustness ----------------------------------------------------------

    /// Deterministic xorshift64 PRNG.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Truncates at many points and mutates bytes at random; `inspect` must
    /// return (any result) every time. A panic fails the test.
    fn hammer(name: &str, original: &[u8], rounds: usize, seed: u64) {
        let len = original.len();
        let step = (len / 400).max(1);
        let mut cut = 0;
        while cut < len {
            let _ = inspect(&original[..cut]);
            cut += if cut < 4096 { 1.max(step.min(7)) } else { step };
        }
        let mut rng = XorShift(seed | 1);
        let mut data = original.to_vec();
        for round in 0..rounds {
            data.clear();
            data.extend_from_slice(original);
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                // Headers live near the start: bias half the mutations there.
                let at = if rng.next() & 1 == 0 {
                    rng.below(len.min(4096))
                } else {
                    rng.below(len)
                };
                if let Some(byte) = data.get_mut(at) {
                    *byte = match rng.below(4) {
                        0 => 0xFF,
                        1 => 0x00,
                        2 => *byte ^ (1 << rng.below(8)),
                        _ => rng.next() as u8,
                    };
                }
            }
            if round % 3 == 0 {
                data.truncate(rng.below(len + 1));
            }
            if let Err(e) = inspect(&data) {
                assert!(!e.to_string().is_empty(), "{name}: empty message");
            }
        }
    }

    #[test]
    fn fuzzed_synthetic_inputs_never_panic() {
        let exif = exif_item_data();
        let mut xmp = XMP_APP1_ID.to_vec();
        xmp.extend_from_slice(b"<x:xmpmeta/>");
        let samples: Vec<(&str, Vec<u8>)> = vec![
            (
                "jpeg",
                jpeg_with(
                    &[
                        segment(APP1, &xmp),
                        photoshop_app13(b"\x1c\x02\x00\x00\x02\x00\x04"),
                    ],
                    SCAN,
                    true,
                ),
            ),
            (
                "png",
                png_with(9, 9, &[itxt(PNG_XMP_KEYWORD, false, b"<x/>")], true),
            ),
            (
                "webp",
                webp(&[vp8x(8, 8), vp8(8, 8), riff_chunk(b"EXIF", TIFF_BE)]),
            ),
            (
                "tiff",
                simple_tiff(false, 8, 8, 4, &[(700, 1, 5, b"<x/>\0".to_vec())], &[0; 4]),
            ),
            (
                "heif",
                heif_file(&simple_heif_spec(b"hvc1", HEVC_DATA, &exif)),
            ),
        ];
        for (i, (name, bytes)) in samples.iter().enumerate() {
            expect_ok(bytes);
            hammer(name, bytes, 20_000, 0x9E37_79B9_7F4A_7C15 ^ i as u64);
        }
    }

    // -- shared test data ----------------------------------------------------

    fn testdata_dir() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata");
        if dir.join("manifest.csv").is_file() {
            return Some(dir);
        }
        if std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() == Ok("1") {
            panic!(
                "CONSENTRY_REQUIRE_TESTDATA=1 but {} has no manifest.csv",
                dir.display()
            );
        }
        eprintln!(
            "skipped: ../shared/testdata not found (looked in {})",
            dir.display()
        );
        None
    }

    /// Minimal RFC 4180 reader: quoted fields, doubled quotes, newlines in quotes.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        if !field.is_empty() || !row.is_empty() {
            row.push(field);
            rows.push(row);
        }
        rows
    }

    #[test]
    fn csv_reader_handles_quotes() {
        let rows = parse_csv("a,b,c\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\nlast,,\n");
        assert_eq!(rows[1], vec!["x, y", "say \"hi\"", "two\nlines"]);
        assert_eq!(rows[2], vec!["last", "", ""]);
    }

    struct ManifestRow {
        path: String,
        format: String,
        width: Option<u32>,
        height: Option<u32>,
    }

    fn manifest(dir: &Path) -> Vec<ManifestRow> {
        let text = std::fs::read_to_string(dir.join("manifest.csv")).expect("read manifest.csv");
        let mut rows = parse_csv(&text).into_iter();
        let header = rows.next().expect("manifest header");
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let (path, format, width, height) = (
            column("path"),
            column("format"),
            column("width"),
            column("height"),
        );
        rows.filter(|r| r.len() > height)
            .map(|r| ManifestRow {
                path: r[path].clone(),
                format: r[format].clone(),
                width: r[width].parse().ok(),
                height: r[height].parse().ok(),
            })
            .collect()
    }

    fn read(dir: &Path, rel: &str) -> Vec<u8> {
        std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    const IMAGE_EXTENSIONS: &[&str] = &[
        "jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "heif", "avif",
    ];

    #[derive(Debug)]
    enum Expect {
        Empty,
        NotAnImage(&'static str),
        Ok(ImageFormat),
        OkSize(u32, u32),
        Truncated,
        Corrupt,
        AnyErr,
    }

    /// Expected outcome for every file in broken/ (a new file must be added here).
    fn broken_expectation(name: &str) -> Expect {
        match name {
            "zero_bytes.jpg" => Expect::Empty,
            "text_named_as.jpg" => Expect::NotAnImage("text"),
            "pdf_named_as.jpg" => Expect::NotAnImage("PDF"),
            "bad_magic_soi_zeroed.jpg" => {
                Expect::NotAnImage("unknown content (first bytes 00 00 ff ")
            }
            "png_named_as.jpg" => Expect::Ok(ImageFormat::Png),
            "jpeg_named_as.png" => Expect::Ok(ImageFormat::Jpeg),
            "heic_named_as.jpg" => Expect::Ok(ImageFormat::Heif),
            "trailing_garbage_after_eoi.jpg" => Expect::Ok(ImageFormat::Jpeg),
            "truncated_50pct.jpg"
            | "truncated_50pct.png"
            | "truncated_50pct.heic"
            | "truncated_header_only.jpg" => Expect::Truncated,
            // The random bytes contain 0xFF followed by a reserved marker code.
            "corrupt_scan_data.jpg" => Expect::Corrupt,
            // Valid boxes, but the "image data" is the text "<dummy image data>".
            "exiftool_metadata_only.heic" => Expect::Corrupt,
            "bomb_header_65500x65500.jpg" => Expect::OkSize(65500, 65500),
            "bomb_header_65535x65535.png" => Expect::OkSize(65535, 65535),
            "bomb_valid_20000x20000_gray.png" => Expect::OkSize(20000, 20000),
            n if n.starts_with("fuzzed_") => Expect::AnyErr,
            other => panic!("broken/{other} has no expected outcome in this test; add one"),
        }
    }

    #[test]
    fn shared_testdata_matches_manifest() {
        let Some(dir) = testdata_dir() else { return };
        let rows = manifest(&dir);
        assert!(rows.len() > 100, "manifest has only {} rows", rows.len());
        let (mut images, mut broken, mut others) = (0, 0, 0);
        for row in &rows {
            let bytes = read(&dir, &row.path);
            let result = inspect(&bytes);
            if let Err(e) = &result {
                assert_message_style(e);
            }
            let ext = row
                .path
                .rsplit('.')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if let Some(name) = row.path.strip_prefix("broken/") {
                broken += 1;
                let expected = broken_expectation(name);
                let ok = match (&expected, &result) {
                    (Expect::Empty, Err(ContainerError::Empty)) => true,
                    (Expect::NotAnImage(needle), Err(ContainerError::NotAnImage(msg))) => {
                        msg.contains(needle)
                    }
                    (Expect::Ok(format), Ok(info)) => {
                        info.format == *format
                            && row.width.is_none_or(|w| oriented(info).0 == w)
                            && row.height.is_none_or(|h| oriented(info).1 == h)
                    }
                    (Expect::OkSize(w, h), Ok(info)) => (info.width, info.height) == (*w, *h),
                    (Expect::Truncated, Err(ContainerError::Truncated { .. })) => true,
                    (Expect::Corrupt, Err(ContainerError::Corrupt { .. })) => true,
                    (Expect::AnyErr, Err(_)) => true,
                    _ => false,
                };
                assert!(ok, "{}: expected {expected:?}, got {result:?}", row.path);
            } else if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                images += 1;
                let info = result.unwrap_or_else(|e| panic!("{}: {e}", row.path));
                assert!(
                    info.format.name().eq_ignore_ascii_case(&row.format),
                    "{}: {:?} vs {}",
                    row.path,
                    info.format,
                    row.format
                );
                let expected = (row.width.expect("width"), row.height.expect("height"));
                assert_eq!(oriented(&info), expected, "{}: size", row.path);
            } else {
                others += 1;
                assert!(
                    matches!(result, Err(ContainerError::NotAnImage(_))),
                    "{} should not be an image: {result:?}",
                    row.path
                );
            }
        }
        eprintln!("checked {images} images, {broken} broken files, {others} non-images");
    }

    /// The manifest's sizes come from Pillow, whose HEIF plugin applies
    /// `irot`; `ContainerInfo` reports the stored size, so swap on odd turns.
    fn oriented(info: &ContainerInfo) -> (u32, u32) {
        if info.quarter_turns % 2 == 1 {
            (info.height, info.width)
        } else {
            (info.width, info.height)
        }
    }

    #[test]
    fn shared_testdata_specific_outcomes() {
        let Some(dir) = testdata_dir() else { return };
        let err = |rel: &str| inspect(&read(&dir, rel)).expect_err(rel).to_string();
        assert_eq!(
            err("broken/truncated_header_only.jpg"),
            "truncated JPEG file: APP1 segment at offset 2 declares 8949 bytes but only 2044 remain"
        );
        assert!(err("broken/truncated_50pct.jpg").contains("no end-of-image marker"));
        assert!(err("broken/truncated_50pct.png").contains("chunk 'IDAT'"));
        assert!(err("broken/truncated_50pct.heic").contains("box 'mdat'"));
        assert!(err("broken/corrupt_scan_data.jpg").contains("in scan data"));
        assert!(err("broken/exiftool_metadata_only.heic").contains("not a valid HEVC bitstream"));
        assert!(err("broken/fuzzed_imagetestsuite_817f9655.png").contains("bad CRC"));
    }

    #[test]
    fn shared_testdata_metadata() {
        let Some(dir) = testdata_dir() else { return };
        let info = |rel: &str| inspect(&read(&dir, rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));

        let iptc = info("metadata/iptc_reference_2019_personinimage_modelrelease.jpg");
        assert!(is_tiff_header(iptc.metadata.exif.as_deref().expect("exif")));
        assert!(!iptc.metadata.xmp.is_empty());
        assert!(iptc.metadata.xmp[0].windows(9).any(|w| w == b"x:xmpmeta"));
        let iim = iptc.metadata.iptc_iim.expect("iptc");
        assert_eq!(
            iim.first(),
            Some(&0x1C),
            "IIM datasets start with tag marker 0x1c"
        );

        let png = info("metadata/mwg_regions_named_2faces.png");
        assert!(
            png.metadata
                .xmp
                .iter()
                .any(|x| x.windows(6).any(|w| w == b"mwg-rs"))
        );

        let heic = info("metadata/iphone_xr_gps_orientation6.heic");
        assert_eq!(
            (heic.format, heic.width, heic.height, heic.quarter_turns),
            (ImageFormat::Heif, 4032, 3024, 3)
        );
        assert!(is_tiff_header(
            heic.metadata.exif.as_deref().expect("heic exif")
        ));
        assert_eq!(heic.metadata.xmp.len(), 1);

        let webp = info("metadata/iphonex_gps_orientation6.webp");
        assert!(is_tiff_header(
            webp.metadata.exif.as_deref().expect("webp exif")
        ));

        let tif = read(&dir, "metadata/exiftool_tiff.tif");
        let tiff = inspect(&tif).expect("tiff");
        assert_eq!(tiff.metadata.exif.as_deref(), Some(&tif[..]));
        assert!(tiff.metadata.iptc_iim.is_some());

        let avif = info("nofaces/cat_canon_exif.avif");
        assert_eq!(avif.format, ImageFormat::Avif);
        assert!(is_tiff_header(
            avif.metadata.exif.as_deref().expect("avif exif")
        ));
        assert!(!avif.metadata.xmp.is_empty());
    }

    #[test]
    fn fuzzed_real_files_never_panic() {
        let Some(dir) = testdata_dir() else { return };
        let files = [
            ("faces/identities/obama/obama_small.jpg", 3000),
            ("metadata/exiftool_iptc.jpg", 3000),
            ("faces/identities/amy/amy1.png", 2000),
            ("metadata/iphonex_gps_orientation6.webp", 2000),
            ("metadata/exiftool_tiff.tif", 5000),
            ("metadata/tiff_concert.tiff", 300),
            ("broken/heic_named_as.jpg", 3000),
            ("nofaces/cat_canon_exif.avif", 300),
            ("broken/exiftool_metadata_only.heic", 5000),
            ("broken/fuzzed_imagetestsuite_754664a1.jpg", 3000),
        ];
        for (i, (rel, rounds)) in files.iter().enumerate() {
            hammer(
                rel,
                &read(&dir, rel),
                *rounds,
                0xD1B5_4A32_D192_ED03 ^ (i as u64) << 8,
            );
        }
    }
}
