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

use std::collections::BTreeSet;
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
    Truncated { format: &'static str, detail: String },
    #[error("corrupt {format} file: {detail}")]
    Corrupt { format: &'static str, detail: String },
}

impl ContainerError {
    fn truncated(format: ImageFormat, detail: impl Into<String>) -> Self {
        ContainerError::Truncated { format: format.name(), detail: detail.into() }
    }

    fn corrupt(format: ImageFormat, detail: impl Into<String>) -> Self {
        ContainerError::Corrupt { format: format.name(), detail: detail.into() }
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
    code.iter().flat_map(|&c| std::ascii::escape_default(c)).map(char::from).collect()
}

/// The first few bytes as lowercase hex, for "unknown content" messages.
fn hex_prefix(b: &[u8]) -> String {
    b.iter().take(4).map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
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
    (b"PK\x03\x04", "ZIP archive (or an Office/OpenDocument file)"),
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

const HEIF_BRANDS: &[&[u8; 4]] =
    &[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"];
const GENERIC_HEIF_BRANDS: &[&[u8; 4]] = &[b"mif1", b"msf1", b"mif2", b"mif3"];
const AVIF_BRANDS: &[&[u8; 4]] = &[b"avif", b"avis", b"avio"];

fn sniff(b: &[u8]) -> Result<Sniffed, ContainerError> {
    if b.starts_with(b"\xff\xd8\xff") {
        return Ok(Sniffed::Jpeg);
    }
    if b.starts_with(PNG_SIGNATURE) {
        return Ok(Sniffed::Png);
    }
    if let Some((_, name)) = UNSUPPORTED_SIGNATURES.iter().find(|(sig, _)| b.starts_with(sig)) {
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
    if b.get(4..8) == Some(b"ftyp") {
        if let Some(major) = array::<4>(b, 8) {
            return sniff_isobmff(b, major).map(Sniffed::Isobmff);
        }
    }
    if is_bmp(b) {
        return Err(ContainerError::Unsupported("BMP".into()));
    }
    Err(ContainerError::NotAnImage(describe_non_image(b)))
}

/// Decides HEIF vs AVIF from the `ftyp` brands; other ISO media is rejected.
fn sniff_isobmff(b: &[u8], major: [u8; 4]) -> Result<ImageFormat, ContainerError> {
    let declared = be32(b, 0).and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let end = declared.clamp(16, 4096).min(b.len());
    let compatible: Vec<[u8; 4]> =
        b.get(16..end).unwrap_or(&[]).chunks_exact(4).filter_map(|c| c.try_into().ok()).collect();
    let has = |set: &[&[u8; 4]]| {
        set.iter().any(|brand| **brand == major || compatible.iter().any(|c| c == *brand))
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
    if let Some((_, name)) = NON_IMAGE_SIGNATURES.iter().find(|(sig, _)| b.starts_with(sig)) {
        return (*name).to_owned();
    }
    if looks_like_text(b) {
        let text = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
        let start = text.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(text.len());
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
        && valid.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
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
                if let (Some(guid), Some(full_len), Some(offset), Some(data)) =
                    (rest.get(..32), be32(rest, 32), be32(rest, 36), rest.get(40..))
                {
                    self.extended_xmp.push(ExtendedXmpChunk { guid, full_len, offset, data });
                }
            }
        } else if code == APP13 {
            if let Some(rest) = payload.strip_prefix(PHOTOSHOP_APP13_ID) {
                self.photoshop.push(rest);
            }
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
        EmbeddedMetadata { exif: self.exif, xmp, iptc_iim }
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
        let Some(skip) = b.get(pos..).and_then(|rest| rest.iter().position(|&x| x == 0xFF)) else {
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
                        format!("headers only, no image data (end-of-image marker at offset {marker_at} with no frame header)"),
                    ));
                };
                if scans == 0 {
                    return Err(ContainerError::corrupt(
                        F,
                        format!("headers only, no image data (end-of-image marker at offset {marker_at} before any scan)"),
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
                format!("{name} segment at offset {marker_at} declares an invalid length of {len} bytes"),
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
                    format!("second frame header ({name}) at offset {marker_at}; hierarchical or multi-frame JPEG is not supported"),
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
            if let (Some(lines), Some(frame)) = (be16(payload, 0), frame.as_mut()) {
                if frame.height == 0 {
                    frame.height = u32::from(lines);
                }
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
        return Err(ContainerError::corrupt(F, format!("frame header ({name}) at offset {at} is too short")));
    };
    if components == 0 || payload.len() < 6 + 3 * usize::from(components) {
        return Err(ContainerError::corrupt(
            F,
            format!("frame header ({name}) at offset {at} has an invalid component list"),
        ));
    }
    if width == 0 {
        return Err(ContainerError::corrupt(F, format!("frame header ({name}) at offset {at} gives a width of 0")));
    }
    Ok(JpegFrame { width: u32::from(width), height: u32::from(height) })
}

/// Walks entropy-coded scan data from `pos` and returns the offset of the
/// marker that ends it.
fn skip_scan_data(b: &[u8], mut pos: usize) -> Result<usize, ContainerError> {
    const F: ImageFormat = ImageFormat::Jpeg;
    let ends_inside = || {
        ContainerError::truncated(F, "no end-of-image marker; the file ends inside the scan data")
    };
    loop {
        let rest = b.get(pos..).unwrap_or(&[]);
        let ff = pos + rest.iter().position(|&x| x == 0xFF).ok_or_else(ends_inside)?;
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
            c if is_sof(c) => {
                return Err(ContainerError::corrupt(
                    F,
                    format!("unexpected frame header 0xFF{c:02X} at offset {} in scan data (hierarchical JPEG is not supported)", next - 1),
                ));
            }
            c => {
                return Err(ContainerError::corrupt(
                    F,
                    format!("invalid marker 0xFF{c:02X} at offset {} in scan data", next - 1),
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
        format!("headers only, no image data; the file ends at offset {len} before the frame header")
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
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
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
            return Err(ContainerError::corrupt(F, format!("invalid chunk type '{name}' at offset {pos}")));
        }
        if len > 0x7FFF_FFFF {
            return Err(ContainerError::corrupt(
                F,
                format!("chunk '{name}' at offset {pos} declares an invalid length of {len} bytes"),
            ));
        }
        let data_len = len as usize;
        let (Some(data), Some(stored_crc)) =
            (b.get(pos + 8..pos + 8 + data_len), be32(b, pos + 8 + data_len))
        else {
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
                format!("chunk '{name}' at offset {pos} has a bad CRC (stored {stored_crc:08x}, computed {computed_crc:08x})"),
            ));
        }
        if header.is_none() && &kind != b"IHDR" {
            if &kind == b"CgBI" {
                return Err(ContainerError::Unsupported(
                    "Apple-optimised PNG (CgBI); re-export it as a standard PNG".into(),
                ));
            }
            return Err(ContainerError::corrupt(F, format!("the first chunk is '{name}', not IHDR")));
        }

        match &kind {
            b"IHDR" => {
                if header.is_some() {
                    return Err(ContainerError::corrupt(F, format!("second IHDR chunk at offset {pos}")));
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
                return Ok(ContainerInfo { format: F, width, height, quarter_turns: 0, metadata });
            }
            b"iTXt" => {
                if let Some(xmp) = png_itxt_xmp(data) {
                    metadata.xmp.push(xmp.to_vec());
                }
            }
            b"eXIf" => {
                if metadata.exif.is_none() {
                    metadata.exif = exif_payload(data);
                }
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
    let [w0, w1, w2, w3, h0, h1, h2, h3, depth, colour, compression, filter, interlace] =
        <[u8; 13]>::try_from(data).map_err(|_| {
            ContainerError::corrupt(F, format!("IHDR chunk has {} bytes instead of 13", data.len()))
        })?;
    let width = u32::from_be_bytes([w0, w1, w2, w3]);
    let height = u32::from_be_bytes([h0, h1, h2, h3]);
    if width == 0 || height == 0 || width > 0x7FFF_FFFF || height > 0x7FFF_FFFF {
        return Err(ContainerError::corrupt(F, format!("IHDR gives an invalid size of {width}x{height}")));
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
        return Err(ContainerError::corrupt(F, "IHDR names an unknown compression, filter or interlace method"));
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
    let Some(keyword_end) = data.iter().position(|&c| c == 0) else { return };
    let (Some(keyword), Some(text)) = (data.get(..keyword_end), data.get(keyword_end + 1..)) else {
        return;
    };
    let Some(kind) = keyword.strip_prefix(b"Raw profile type ") else { return };
    let wanted = match kind {
        b"exif" | b"APP1" => metadata.exif.is_none(),
        b"iptc" | b"8bim" => metadata.iptc_iim.is_none(),
        b"xmp" => true,
        _ => false,
    };
    if !wanted {
        return;
    }
    let Some(profile) = decode_raw_profile(text) else { return };
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
    let digits_end = rest.iter().position(|c| !c.is_ascii_digit()).unwrap_or(rest.len());
    let length: usize = std::str::from_utf8(rest.get(..digits_end)?).ok()?.parse().ok()?;
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
        return Err(ContainerError::corrupt(F, format!("RIFF header declares an invalid size of {riff_size} bytes")));
    }
    let riff_end = riff_size + 8;
    if riff_end > b.len() as u64 {
        return Err(ContainerError::truncated(
            F,
            format!("RIFF header declares {riff_end} bytes but the file has only {}", b.len()),
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
        let (Some(kind), Some(len)) = (array::<4>(b, pos), le32(b, pos + 4)) else {
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
            (b"EXIF", _) => {
                if metadata.exif.is_none() {
                    metadata.exif = exif_payload(data);
                }
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
        return Err(ContainerError::corrupt(F, "no image data (no VP8, VP8L or ANMF chunk)"));
    };
    Ok(ContainerInfo { format: F, width, height, quarter_turns: 0, metadata })
}

/// Lossy bitstream: frame tag, start code, 14-bit width and height.
fn parse_vp8(data: &[u8]) -> Result<(u32, u32), ContainerError> {
    const F: ImageFormat = ImageFormat::WebP;
    let (Some(tag), Some(width), Some(height)) = (le24(data, 0), le16(data, 6), le16(data, 8)) else {
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
        return Err(ContainerError::corrupt(F, "VP8 first partition is larger than its chunk"));
    }
    let (width, height) = (u32::from(width & 0x3FFF), u32::from(height & 0x3FFF));
    if width == 0 || height == 0 {
        return Err(ContainerError::corrupt(F, format!("VP8 frame header gives a size of {width}x{height}")));
    }
    Ok((width, height))
}

/// Lossless bitstream: signature 0x2f, then 14-bit width-1 and height-1.
fn parse_vp8l(data: &[u8]) -> Result<(u32, u32), ContainerError> {
    const F: ImageFormat = ImageFormat::WebP;
    let (Some(0x2F), Some(bits)) = (data.first(), le32(data, 1)) else {
        return Err(ContainerError::corrupt(F, "VP8L chunk has no valid signature"));
    };
    if bits >> 29 != 0 {
        return Err(ContainerError::corrupt(F, "VP8L data has an unknown version number"));
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
            format!("image directory at offset {offset} lies beyond the end of the file ({} bytes)", b.len()),
        ));
    };
    if count == 0 {
        return Err(ContainerError::corrupt(F, format!("image directory at offset {offset} has no entries")));
    }
    let entries_at = at + 2;
    let entries_end = entries_at.saturating_add(12 * usize::from(count));
    if entries_end > b.len() {
        return Err(ContainerError::truncated(
            F,
            format!("image directory at offset {offset} ({count} entries) extends beyond the end of the file ({} bytes)", b.len()),
        ));
    }
    // Some writers omit the next-IFD pointer of the last IFD at the very end.
    let next = e.u32(b, entries_end).unwrap_or(0);
    Ok(Ifd { entries_at, count: usize::from(count), next })
}

/// The bytes of a tag's value, inline or at its offset.
fn tiff_value<'b>(b: &'b [u8], e: Endian, entry: IfdEntry) -> Result<&'b [u8], ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let tag = entry.tag;
    let Some(unit) = tiff_type_size(entry.kind) else {
        return Err(ContainerError::corrupt(F, format!("tag {tag} has an unknown field type {}", entry.kind)));
    };
    let size = unit * u64::from(entry.count);
    if size <= 4 {
        return slice_at(b, entry.value_at as u64, size)
            .ok_or_else(|| ContainerError::truncated(F, format!("tag {tag} is cut off by the end of the file")));
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

fn tiff_dimension(b: &[u8], e: Endian, ifd: &Ifd, tag: u16, what: &str) -> Result<u32, ContainerError> {
    const F: ImageFormat = ImageFormat::Tiff;
    let entry = ifd
        .find(b, e, tag)
        .ok_or_else(|| ContainerError::corrupt(F, format!("the first image directory has no {what}")))?;
    let value = tiff_value(b, e, entry)?;
    match (entry.kind, tiff_uint(value, e, entry.kind, 0)) {
        (3 | 4, Some(n)) if n > 0 => Ok(n as u32),
        _ => Err(ContainerError::corrupt(F, format!("invalid {what} in the first image directory"))),
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
            format!("{} {what} offsets but {} {what} byte counts", offsets.count, counts.count),
        ));
    }
    let (offset_values, count_values) = (tiff_value(b, e, offsets)?, tiff_value(b, e, counts)?);
    for i in 0..offsets.count as usize {
        let (Some(start), Some(len)) = (
            tiff_uint(offset_values, e, offsets.kind, i),
            tiff_uint(count_values, e, counts.kind, i),
        ) else {
            return Err(ContainerError::corrupt(F, format!("{what} offsets or byte counts have an invalid field type")));
        };
        if start.checked_add(len).is_none_or(|end| end > b.len() as u64) {
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
    let e = if b.starts_with(b"II") { Endian::Little } else { Endian::Big };
    let Some(first) = e.u32(b, 4) else {
        return Err(ContainerError::truncated(F, "the file ends inside the TIFF header"));
    };
    if first == 0 {
        return Err(ContainerError::corrupt(F, "the header points to no image directory"));
    }

    // Walk the whole IFD chain so that a loop or a cut-off directory is caught.
    let ifd0 = read_ifd(b, e, first)?;
    let mut visited = vec![first];
    let mut next = ifd0.next;
    while next != 0 {
        if visited.contains(&next) {
            return Err(ContainerError::corrupt(F, format!("the image directory chain loops back to offset {next}")));
        }
        if visited.len() >= MAX_TIFF_IFDS {
            return Err(ContainerError::corrupt(F, format!("more than {MAX_TIFF_IFDS} image directories")));
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
    let strips = check_tiff_blocks(b, e, &ifd0, TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS, "strip")?;
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
    if let Some(xmp) = ifd0.find(b, e, TAG_XMP).and_then(|entry| tiff_value(b, e, entry).ok()) {
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

    Ok(ContainerInfo { format: F, width, height, quarter_turns: 0, metadata })
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
    Ok(BoxHeader { kind, start: at, body: at + header_len, end: at + size as usize })
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
                let name = kind.map_or_else(|| "box".to_owned(), |k| format!("box '{}'", fourcc(&k)));
                let detail = match problem {
                    BoxProblem::Header => format!("{name} header at offset {at} is cut off by the end of its parent '{parent}'"),
                    BoxProblem::BadSize(size) => format!("{name} at offset {at} declares an invalid size of {size} bytes"),
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
        Reader { buf, pos: start, end: end.min(buf.len()) }
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
        if wide { self.u32() } else { self.u16().map(u32::from) }
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

struct HeifItem {
    id: u32,
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
    id: u32,
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

struct Reference {
    kind: [u8; 4],
    from: u32,
    to: Vec<u32>,
}

#[derive(Default)]
struct HeifMeta {
    primary: Option<u32>,
    items: Vec<HeifItem>,
    locations: Vec<ItemLocation>,
    properties: Vec<Property>,
    /// (item id, 1-based property indices)
    associations: Vec<(u32, Vec<u16>)>,
    references: Vec<Reference>,
    idat: Option<(usize, usize)>,
}

/// Item types that are images rather than metadata.
fn is_derived_image(kind: &[u8; 4]) -> bool {
    matches!(kind, b"grid" | b"iden" | b"iovl")
}

fn is_metadata_item(kind: &[u8; 4]) -> bool {
    matches!(kind, b"Exif" | b"mime" | b"uri ")
}

impl HeifMeta {
    fn item(&self, id: u32) -> Option<&HeifItem> {
        self.items.iter().find(|item| item.id == id)
    }

    fn location(&self, id: u32) -> Option<&ItemLocation> {
        self.locations.iter().find(|loc| loc.id == id)
    }

    fn properties_of(&self, id: u32) -> impl Iterator<Item = &Property> {
        self.associations
            .iter()
            .filter(move |(item, _)| *item == id)
            .flat_map(|(_, indices)| indices.iter())
            .filter_map(|&index| self.properties.get(usize::from(index).checked_sub(1)?))
    }

    fn references_from(&self, kind: &[u8; 4], id: u32) -> impl Iterator<Item = u32> {
        self.references
            .iter()
            .filter(move |r| &r.kind == kind && r.from == id)
            .flat_map(|r| r.to.iter().copied())
    }

    /// The byte ranges holding an item's data, in order. `None` for data this
    /// module does not read (another file, construction method 2).
    fn item_data<'b>(&self, b: &'b [u8], loc: &ItemLocation, format: ImageFormat) -> Result<Option<Vec<&'b [u8]>>, ContainerError> {
        if loc.data_reference != 0 {
            return Ok(None);
        }
        let (source, source_start, what): (&[u8], usize, &str) = match loc.construction_method {
            0 => (b, 0, "the end of the file"),
            1 => {
                let Some((start, end)) = self.idat else {
                    return Err(ContainerError::corrupt(
                        format,
                        format!("item {} is stored in an 'idat' box but there is none", loc.id),
                    ));
                };
                (b.get(start..end).unwrap_or(&[]), start, "its 'idat' box")
            }
            2 => return Ok(None),
            method => {
                return Err(ContainerError::corrupt(
                    format,
                    format!("item {} uses unknown construction method {method}", loc.id),
                ));
            }
        };
        let mut parts = Vec::with_capacity(loc.extents.len());
        for extent in &loc.extents {
            // A length of 0 means "to the end of the source".
            let len = if extent.len == 0 {
                (source.len() as u64).saturating_sub(extent.offset)
            } else {
                extent.len
            };
            let Some(part) = slice_at(source, extent.offset, len) else {
                let detail = format!(
                    "item {} data at offset {} ({} bytes) lies beyond {what} ({} bytes)",
                    loc.id,
                    extent.offset.saturating_add(source_start as u64),
                    len,
                    source.len()
                );
                return Err(if loc.construction_method == 0 {
                    ContainerError::truncated(format, detail)
                } else {
                    ContainerError::corrupt(format, detail)
                });
            };
            parts.push(part);
        }
        Ok(Some(parts))
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
                    format!("{name} at offset {pos} declares {size} bytes but only {} remain", b.len() - pos),
                ),
            }
        })?;
        if pos == 0 && &header.kind != b"ftyp" {
            return Err(ContainerError::corrupt(f, "the file does not start with an 'ftyp' box"));
        }
        if &header.kind == b"meta" && meta_box.is_none() {
            meta_box = Some(header);
        }
        pos = header.end;
    }
    let Some(meta_box) = meta_box else {
        return Err(ContainerError::corrupt(f, "no 'meta' box, so no image items (an image sequence or video?)"));
    };
    let meta = parse_meta(b, meta_box, f)?;

    // Every stored item must lie inside the file (this is what catches a
    // truncated file whose mdat size was rewritten, and missing grid tiles).
    for loc in &meta.locations {
        meta.item_data(b, loc, f)?;
    }

    let primary_id = meta
        .primary
        .ok_or_else(|| ContainerError::corrupt(f, "no primary item (missing 'pitm' box)"))?;
    let primary = meta.item(primary_id).ok_or_else(|| {
        ContainerError::corrupt(f, format!("primary item {primary_id} is not declared in 'iinf'"))
    })?;
    if is_metadata_item(&primary.kind) {
        return Err(ContainerError::corrupt(
            f,
            format!("primary item {primary_id} is not an image (type '{}')", fourcc(&primary.kind)),
        ));
    }
    let (width, height) = meta
        .properties_of(primary_id)
        .find_map(|p| match *p {
            Property::Ispe { width, height } => Some((width, height)),
            _ => None,
        })
        .ok_or_else(|| {
            ContainerError::corrupt(f, format!("primary item {primary_id} has no image size ('ispe' property)"))
        })?;
    if width == 0 || height == 0 {
        return Err(ContainerError::corrupt(f, format!("primary item {primary_id} has a size of {width}x{height}")));
    }
    let quarter_turns = meta
        .properties_of(primary_id)
        .find_map(|p| match *p {
            Property::Irot(turns) => Some(turns),
            _ => None,
        })
        .unwrap_or(0);

    // The coded images behind the primary (itself, or a grid's tiles) must
    // have data, and that data must be a well-formed bitstream.
    let mut coded = Vec::new();
    collect_coded_inputs(&meta, primary_id, 0, &mut BTreeSet::new(), &mut coded, f)?;
    let mut format = brand_format;
    for (n, &id) in coded.iter().enumerate() {
        let Some(item) = meta.item(id) else { continue };
        let kind = item.kind;
        if n == 0 {
            format = match &kind {
                b"av01" => ImageFormat::Avif,
                b"hvc1" | b"hev1" => ImageFormat::Heif,
                _ => brand_format,
            };
        }
        let missing = || {
            ContainerError::corrupt(
                format,
                format!("image item {id} ('{}') has no data location in 'iloc'", fourcc(&kind)),
            )
        };
        let loc = meta.location(id).ok_or_else(missing)?;
        let Some(parts) = meta.item_data(b, loc, format)? else { continue };
        if parts.iter().all(|p| p.is_empty()) {
            return Err(missing());
        }
        let problem = match &kind {
            b"hvc1" | b"hev1" => {
                let nal_length_size = meta
                    .properties_of(id)
                    .find_map(|p| match *p {
                        Property::HvcC { nal_length_size } => Some(nal_length_size),
                        _ => None,
                    })
                    .unwrap_or(4);
                check_hevc_stream(&parts, nal_length_size).err().map(|e| ("HEVC", e))
            }
            b"av01" => check_av1_stream(&parts).err().map(|e| ("AV1", e)),
            _ => None,
        };
        if let Some((codec, detail)) = problem {
            return Err(ContainerError::corrupt(
                format,
                format!("image item {id} is not a valid {codec} bitstream: {detail}"),
            ));
        }
    }

    let metadata = heif_metadata(b, &meta, primary_id, format)?;
    Ok(ContainerInfo { format, width, height, quarter_turns, metadata })
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
    let item = meta
        .item(id)
        .ok_or_else(|| ContainerError::corrupt(f, format!("image item {id} is referenced but not declared in 'iinf'")))?;
    if is_metadata_item(&item.kind) {
        return Err(ContainerError::corrupt(
            f,
            format!("item {id} is used as an image but has type '{}'", fourcc(&item.kind)),
        ));
    }
    if !is_derived_image(&item.kind) {
        out.push(id);
        return Ok(());
    }
    if depth >= 8 {
        return Err(ContainerError::corrupt(f, "derived image items are nested too deeply"));
    }
    let inputs: Vec<u32> = meta.references_from(b"dimg", id).collect();
    if inputs.is_empty() {
        return Err(ContainerError::corrupt(
            f,
            format!("derived image item {id} ('{}') has no input images ('dimg' reference)", fourcc(&item.kind)),
        ));
    }
    for input in inputs {
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
                format!("malformed '{}' box at offset {}: {what}", fourcc(&child.kind), child.start),
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
                if version == 0 { r.u16().map(u32::from) } else { r.u32() }.ok_or_else(|| bad("too short"))?;
                for entry in child_boxes(b, r.pos, child.end, "iinf", f) {
                    let entry = entry?;
                    if &entry.kind == b"infe" {
                        if let Some(item) = parse_infe(b, entry) {
                            meta.items.push(item);
                        }
                    }
                }
            }
            b"iloc" => parse_iloc(&mut r, &mut meta.locations).ok_or_else(|| bad("entries run past the end of the box"))?,
            b"iprp" => {
                for part in child_boxes(b, child.body, child.end, "iprp", f) {
                    let part = part?;
                    match &part.kind {
                        b"ipco" => {
                            for property in child_boxes(b, part.body, part.end, "ipco", f) {
                                meta.properties.push(parse_property(b, property?));
                            }
                        }
                        b"ipma" => {
                            let mut r = Reader::new(b, part.body, part.end);
                            parse_ipma(&mut r, &mut meta.associations).ok_or_else(|| {
                                ContainerError::corrupt(
                                    f,
                                    format!("malformed 'ipma' box at offset {}: entries run past the end of the box", part.start),
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
                    let parsed = (|| {
                        let from = rr.item_id(version != 0)?;
                        let count = rr.u16()?;
                        let to = (0..count).map(|_| rr.item_id(version != 0)).collect::<Option<Vec<_>>>()?;
                        Some(Reference { kind: reference.kind, from, to })
                    })();
                    meta.references.push(parsed.ok_or_else(|| {
                        ContainerError::corrupt(
                            f,
                            format!("malformed '{}' reference at offset {}", fourcc(&reference.kind), reference.start),
                        )
                    })?);
                }
            }
            b"idat" => meta.idat = Some((child.body, child.end)),
            _ => {}
        }
    }
    let property_count = meta.properties.len();
    if let Some(index) = meta
        .associations
        .iter()
        .flat_map(|(_, indices)| indices.iter())
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
fn parse_infe(b: &[u8], entry: BoxHeader) -> Option<HeifItem> {
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
    Some(HeifItem { id, kind, content_type, content_encoding })
}

/// Item locations, versions 0 to 2. `None` if the box is malformed.
fn parse_iloc(r: &mut Reader<'_>, out: &mut Vec<ItemLocation>) -> Option<()> {
    let (version, _) = r.full_box()?;
    if version > 2 {
        return None;
    }
    let sizes = r.u16()?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 0xF) as u8;
    let base_offset_size = ((sizes >> 4) & 0xF) as u8;
    let index_size = if version == 0 { 0 } else { (sizes & 0xF) as u8 };
    if [offset_size, length_size, base_offset_size, index_size].iter().any(|s| !matches!(s, 0 | 4 | 8)) {
        return None;
    }
    let count = if version < 2 { r.u16().map(u32::from)? } else { r.u32()? };
    for _ in 0..count {
        let id = r.item_id(version == 2)?;
        let construction_method = if version == 0 { 0 } else { (r.u16()? & 0xF) as u8 };
        let data_reference = r.u16()?;
        let base_offset = r.uint(base_offset_size)?;
        let extent_count = r.u16()?;
        // Each extent takes at least one byte unless all sizes are zero, so
        // this capacity is bounded by the box size.
        let mut extents = Vec::new();
        for _ in 0..extent_count {
            r.uint(index_size)?;
            let offset = r.uint(offset_size)?;
            let len = r.uint(length_size)?;
            extents.push(Extent { offset: base_offset.saturating_add(offset), len });
        }
        if !out.iter().any(|loc| loc.id == id) {
            out.push(ItemLocation { id, construction_method, data_reference, extents });
        }
    }
    Some(())
}

fn parse_ipma(r: &mut Reader<'_>, out: &mut Vec<(u32, Vec<u16>)>) -> Option<()> {
    let (version, flags) = r.full_box()?;
    let count = r.u32()?;
    for _ in 0..count {
        let id = r.item_id(version != 0)?;
        let n = r.u8()?;
        let mut indices = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let index = if flags & 1 != 0 { r.u16()? & 0x7FFF } else { u16::from(r.u8()? & 0x7F) };
            if index != 0 {
                indices.push(index);
            }
        }
        out.push((id, indices));
    }
    Some(())
}

fn parse_property(b: &[u8], property: BoxHeader) -> Property {
    let mut r = Reader::new(b, property.body, property.end);
    let parsed = match &property.kind {
        b"ispe" => (|| {
            r.full_box()?;
            Some(Property::Ispe { width: r.u32()?, height: r.u32()? })
        })(),
        b"irot" => r.u8().map(|angle| Property::Irot(angle & 3)),
        b"hvcC" => r
            .take(22)
            .and_then(|config| config.get(21))
            .map(|&byte| Property::HvcC { nal_length_size: (byte & 3) + 1 }),
        _ => None,
    };
    parsed.unwrap_or(Property::Other)
}

/// The byte at logical position `at` of data split into `parts`.
fn chained_byte(parts: &[&[u8]], mut at: u64) -> Option<u8> {
    for part in parts {
        let len = part.len() as u64;
        if at < len {
            return part.get(at as usize).copied();
        }
        at -= len;
    }
    None
}

/// HEVC samples are NAL units, each prefixed by its big-endian length. The
/// prefixes must tile the data exactly.
fn check_hevc_stream(parts: &[&[u8]], nal_length_size: u8) -> Result<(), String> {
    if !matches!(nal_length_size, 1 | 2 | 4) {
        return Err(format!("invalid NAL length size {nal_length_size} in 'hvcC'"));
    }
    let size = u64::from(nal_length_size);
    let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let mut at = 0u64;
    while at < total {
        let remain = total - at;
        if remain < size {
            return Err(format!("{remain} stray bytes after the last NAL unit"));
        }
        let mut len = 0u64;
        for i in 0..size {
            len = len << 8 | u64::from(chained_byte(parts, at + i).unwrap_or(0));
        }
        if len == 0 {
            return Err(format!("empty NAL unit at byte {at}"));
        }
        if len > remain - size {
            return Err(format!("NAL unit at byte {at} declares {len} bytes but only {} remain", remain - size));
        }
        if chained_byte(parts, at + size).is_some_and(|header| header & 0x80 != 0) {
            return Err(format!("NAL unit at byte {at} has its forbidden bit set"));
        }
        at += size + len;
    }
    Ok(())
}

/// AV1 item data is a sequence of OBUs; their size fields must tile the data.
fn check_av1_stream(parts: &[&[u8]]) -> Result<(), String> {
    let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let mut at = 0u64;
    while at < total {
        let header = chained_byte(parts, at).unwrap_or(0);
        if header & 0x80 != 0 {
            return Err(format!("OBU at byte {at} has its forbidden bit set"));
        }
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut next = at + 1 + u64::from(has_extension);
        if !has_size {
            // The OBU runs to the end of the data.
            return Ok(());
        }
        let mut size = 0u64;
        let mut terminated = false;
        for i in 0..8u64 {
            let Some(byte) = chained_byte(parts, next) else { break };
            next += 1;
            size |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                terminated = true;
                break;
            }
        }
        if !terminated {
            return Err(format!("OBU at byte {at} has an unterminated size field"));
        }
        if size > total.saturating_sub(next) {
            return Err(format!("OBU at byte {at} declares {size} bytes but only {} remain", total.saturating_sub(next)));
        }
        at = next + size;
    }
    Ok(())
}

/// EXIF and XMP items (the ones describing the primary item come first).
fn heif_metadata(b: &[u8], meta: &HeifMeta, primary: u32, f: ImageFormat) -> Result<EmbeddedMetadata, ContainerError> {
    let describes_primary = |id: u32| meta.references_from(b"cdsc", id).any(|to| to == primary);
    let mut candidates: Vec<&HeifItem> = meta.items.iter().filter(|item| is_metadata_item(&item.kind)).collect();
    candidates.sort_by_key(|item| !describes_primary(item.id)); // stable: file order otherwise

    let mut metadata = EmbeddedMetadata::default();
    for item in candidates {
        let is_xmp = &item.kind == b"mime"
            && item.content_type.eq_ignore_ascii_case(b"application/rdf+xml")
            && item.content_encoding.is_empty();
        let is_exif = &item.kind == b"Exif" && metadata.exif.is_none();
        if !is_xmp && !is_exif {
            continue;
        }
        let Some(loc) = meta.location(item.id) else { continue };
        let Some(parts) = meta.item_data(b, loc, f)? else { continue };
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
