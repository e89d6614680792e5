//! XMP sidecars for export: one `.xmp` packet per exported photo.
//!
//! Input: a [`SidecarInput`] (faces in displayed pixels, people, releases,
//! rights). Output: the text of a complete `x:xmpmeta` packet, UTF-8, from
//! [`sidecar`]; it cannot fail. Property names follow
//! `shared/design/metadata.md` (ExifTool's XMP, PLUS and MWG tag tables), and
//! the packet reads back through our own reader
//! ([`crate::pipeline::metadata::apply_sidecar`]).
//!
//! # Faces
//!
//! Each face becomes two regions (metadata.md §4.3, "Recommended export per
//! face"):
//!
//! - an MWG region (`mwg-rs:Regions`), as digiKam writes it: `stArea` x, y
//!   the **centre**, x, y, w, h normalised to `mwg-rs:AppliedToDimensions`,
//!   `Type` `Face`, `Name` when the face is named;
//! - an IPTC `Iptc4xmpExt:ImageRegion`: a rectangle with `rbUnit`
//!   **`relative`** (0..1, top-left corner), so that it stays right when the
//!   copy is resized and needs no image size to read; `rId`; `rCtype` the IPTC
//!   `human` entity; `Name` and `PersonInImage` inside the region when named.
//!
//! Coordinates refer to the image **as stored**, before EXIF orientation,
//! while consentry keeps face boxes on the displayed (upright) image:
//! [`displayed_to_stored`] takes a box back into the stored frame, and
//! `AppliedToDimensions` gives the stored size (width and height swapped for
//! orientations 5–8). Boxes are clipped to the image; a box with nothing left
//! inside it, or with non-finite numbers, is not written.
//!
//! `tiff:Orientation` is written only for orientations 2–8: it says which
//! frame the regions are in, and a `1` that only means "unknown" must not
//! override a real orientation in tools that let the sidecar win.
//!
//! # Text
//!
//! Values are trimmed; blank ones are left out. Characters XML 1.0 cannot
//! carry (C0 controls other than tab and line feed, U+FFFE, U+FFFF) are
//! dropped; a carriage return is written as `&#xD;` so that it survives.

use crate::domain::FaceBox;

/// What one exported photo's sidecar says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SidecarInput {
    /// Size of the image as displayed (after EXIF orientation), the space
    /// [`FaceBox`] is in (see `Asset.width/height` in `domain.rs`).
    pub displayed_width: u32,
    pub displayed_height: u32,
    /// EXIF orientation of the original, 1..=8 (1 when unknown; anything
    /// else outside 1..=8 counts as 1).
    pub orientation: u16,
    pub faces: Vec<SidecarFace>,
    /// Top-level `Iptc4xmpExt:PersonInImage` (distinct names, in order;
    /// repeats are dropped).
    pub persons_in_image: Vec<String>,
    /// A PLUS code, e.g. `MR-UMR`, written as the vocabulary URI
    /// `http://ns.useplus.org/ldf/vocab/MR-UMR` (a value that already is a
    /// URI is written as it is).
    pub model_release_status: Option<String>,
    /// `plus:ModelReleaseID` (Bag).
    pub model_release_ids: Vec<String>,
    /// A PLUS code, e.g. `AG-U14`: `plus:MinorModelAgeDisclosure` (as a URI too).
    pub minor_model_age: Option<String>,
    /// `plus:OtherConstraints` (lang-alt x-default).
    pub other_constraints: Option<String>,
    pub rights: SidecarRights,
}

/// One face of the photo.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarFace {
    /// Box in displayed pixels (top-left origin).
    pub bbox: FaceBox,
    /// The person's name when the face is confirmed to a person.
    pub name: Option<String>,
    /// A stable id for the region (e.g. `face-3`): `Iptc4xmpExt:rId`.
    pub region_id: String,
}

/// Licensing and rights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarRights {
    /// `dc:creator` (Seq).
    pub creators: Vec<String>,
    /// `dc:rights` (lang-alt).
    pub copyright: Option<String>,
    /// `photoshop:Credit`.
    pub credit: Option<String>,
    /// `xmpRights:UsageTerms` (lang-alt).
    pub usage_terms: Option<String>,
    /// `xmpRights:WebStatement` (a URL).
    pub web_statement: Option<String>,
    /// `plus:Licensor`, a Seq of `{plus:LicensorName}`.
    pub licensors: Vec<String>,
    /// `plus:LicenseStartDate`, `YYYY-MM-DD`.
    pub licence_start: Option<String>,
    /// `plus:LicenseEndDate`, `YYYY-MM-DD`.
    pub licence_end: Option<String>,
    /// `plus:LicenseID`.
    pub licence_id: Option<String>,
    /// Where the photo may be used, in words: `plus:RegionConstraints`
    /// (lang-alt). That is the PLUS License Data Format's slot for the
    /// geographic limits of a licence (ExifTool's PLUS table, next to
    /// `MediaConstraints` and `ProductOrServiceConstraints`), so a tool that
    /// knows PLUS finds it where it looks; `plus:OtherConstraints` is the
    /// catch-all for what no PLUS property covers, and already carries the
    /// consent notes. (IPTC's subset of PLUS leaves `RegionConstraints` out,
    /// as it does `LicenseEndDate`; our reader does not read it back.)
    pub territory: Option<String>,
}

/// A rectangle in pixels, top-left origin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelRect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl From<FaceBox> for PixelRect {
    fn from(b: FaceBox) -> Self {
        PixelRect {
            x: f64::from(b.x),
            y: f64::from(b.y),
            width: f64::from(b.width),
            height: f64::from(b.height),
        }
    }
}

/// An EXIF orientation, with anything outside 1..=8 taken as 1 (as stored).
fn valid_orientation(orientation: u16) -> u16 {
    if (1..=8).contains(&orientation) {
        orientation
    } else {
        1
    }
}

/// The stored (un-oriented) size, `(width, height)`, of an image displayed at
/// `displayed` with this EXIF orientation: 5–8 swap the axes.
#[must_use]
pub fn stored_size(displayed: (u32, u32), orientation: u16) -> (u32, u32) {
    let (w, h) = displayed;
    if valid_orientation(orientation) >= 5 {
        (h, w)
    } else {
        (w, h)
    }
}

/// Takes a box on the displayed image (`displayed` = its size) back to the
/// image as stored, for EXIF orientations 1–8 as the decoder applies them
/// (`pipeline::decode::apply_orientation`: 2 mirror, 3 half turn, 4 flip,
/// 5 transpose, 6 turn clockwise, 7 transverse, 8 turn anticlockwise).
#[must_use]
pub fn displayed_to_stored(rect: PixelRect, displayed: (u32, u32), orientation: u16) -> PixelRect {
    let (sw, sh) = stored_size(displayed, orientation);
    let (sw, sh) = (f64::from(sw), f64::from(sh));
    let PixelRect {
        x,
        y,
        width: w,
        height: h,
    } = rect;
    // Displayed point (dx, dy) from stored point (sx, sy), W×H the stored size:
    // 2: (W-sx, sy)  3: (W-sx, H-sy)  4: (sx, H-sy)
    // 5: (sy, sx)    6: (H-sy, sx)    7: (H-sy, W-sx)  8: (sy, W-sx)
    // inverted below for the box's top-left corner.
    let (sx, sy, swid, shei) = match valid_orientation(orientation) {
        2 => (sw - (x + w), y, w, h),
        3 => (sw - (x + w), sh - (y + h), w, h),
        4 => (x, sh - (y + h), w, h),
        5 => (y, x, h, w),
        6 => (y, sh - (x + w), h, w),
        7 => (sw - (y + h), sh - (x + w), h, w),
        8 => (sw - (y + h), x, h, w),
        _ => (x, y, w, h),
    };
    PixelRect {
        x: sx,
        y: sy,
        width: swid,
        height: shei,
    }
}

/// The inverse of [`displayed_to_stored`]: a box on the stored image
/// (`stored` = its size) to where it shows on the displayed image.
#[must_use]
pub fn stored_to_displayed(rect: PixelRect, stored: (u32, u32), orientation: u16) -> PixelRect {
    let (sw, sh) = (f64::from(stored.0), f64::from(stored.1));
    let PixelRect {
        x,
        y,
        width: w,
        height: h,
    } = rect;
    let (dx, dy, dw, dh) = match valid_orientation(orientation) {
        2 => (sw - (x + w), y, w, h),
        3 => (sw - (x + w), sh - (y + h), w, h),
        4 => (x, sh - (y + h), w, h),
        5 => (y, x, h, w),
        6 => (sh - (y + h), x, h, w),
        7 => (sh - (y + h), sw - (x + w), h, w),
        8 => (y, sw - (x + w), h, w),
        _ => (x, y, w, h),
    };
    PixelRect {
        x: dx,
        y: dy,
        width: dw,
        height: dh,
    }
}

/// A face's area on the stored image, normalised (0..1, top-left origin) and
/// clipped to it; `None` when nothing of it is inside or it is not finite.
fn stored_area(face: &FaceBox, displayed: (u32, u32), orientation: u16) -> Option<PixelRect> {
    let (sw, sh) = stored_size(displayed, orientation);
    if sw == 0 || sh == 0 {
        return None;
    }
    let r = displayed_to_stored(PixelRect::from(*face), displayed, orientation);
    if ![r.x, r.y, r.width, r.height].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (sw, sh) = (f64::from(sw), f64::from(sh));
    let (x0, x1) = (r.x.max(0.0), (r.x + r.width).min(sw));
    let (y0, y1) = (r.y.max(0.0), (r.y + r.height).min(sh));
    (x1 > x0 && y1 > y0).then(|| PixelRect {
        x: x0 / sw,
        y: y0 / sh,
        width: (x1 - x0) / sw,
        height: (y1 - y0) / sh,
    })
}

/// Namespaces declared on the one `rdf:Description` (metadata.md).
const NAMESPACES: &[(&str, &str)] = &[
    ("dc", "http://purl.org/dc/elements/1.1/"),
    ("xmp", "http://ns.adobe.com/xap/1.0/"),
    ("xmpRights", "http://ns.adobe.com/xap/1.0/rights/"),
    ("photoshop", "http://ns.adobe.com/photoshop/1.0/"),
    ("tiff", "http://ns.adobe.com/tiff/1.0/"),
    ("Iptc4xmpExt", "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"),
    ("plus", "http://ns.useplus.org/ldf/xmp/1.0/"),
    (
        "mwg-rs",
        "http://www.metadataworkinggroup.com/schemas/regions/",
    ),
    ("stArea", "http://ns.adobe.com/xmp/sType/Area#"),
    ("stDim", "http://ns.adobe.com/xap/1.0/sType/Dimensions#"),
];

/// Controlled PLUS values are URIs under this prefix.
const PLUS_VOCAB: &str = "http://ns.useplus.org/ldf/vocab/";
/// The IPTC image region content type of a person.
const IPTC_HUMAN: &str = "http://cv.iptc.org/newscodes/imageregiontype/human";

/// The text of the `.xmp` sidecar for one exported photo.
#[must_use]
pub fn sidecar(input: &SidecarInput) -> String {
    let mut out = Out::default();
    out.line("<?xpacket begin=\"\u{FEFF}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>");
    out.open("x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"consentry\"");
    out.open("rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"");
    let mut description = String::from("rdf:Description rdf:about=\"\"");
    for (prefix, uri) in NAMESPACES {
        description.push_str(&format!("\n    xmlns:{prefix}=\"{uri}\""));
    }
    out.open(&description);

    let orientation = valid_orientation(input.orientation);
    if orientation != 1 {
        out.simple("tiff:Orientation", &orientation.to_string());
    }

    let rights = &input.rights;
    out.array("dc:creator", "Seq", &rights.creators);
    out.lang_alt("dc:rights", rights.copyright.as_deref());
    out.simple_opt("photoshop:Credit", rights.credit.as_deref());
    out.lang_alt("xmpRights:UsageTerms", rights.usage_terms.as_deref());
    out.simple_opt("xmpRights:WebStatement", rights.web_statement.as_deref());

    out.array(
        "Iptc4xmpExt:PersonInImage",
        "Bag",
        &distinct(&input.persons_in_image),
    );

    let displayed = (input.displayed_width, input.displayed_height);
    let regions: Vec<(&SidecarFace, PixelRect)> = input
        .faces
        .iter()
        .filter_map(|face| Some((face, stored_area(&face.bbox, displayed, orientation)?)))
        .collect();
    if !regions.is_empty() {
        iptc_regions(&mut out, &regions);
        mwg_regions(&mut out, &regions, stored_size(displayed, orientation));
    }

    out.simple_opt(
        "plus:ModelReleaseStatus",
        input
            .model_release_status
            .as_deref()
            .and_then(plus_uri)
            .as_deref(),
    );
    out.array("plus:ModelReleaseID", "Bag", &input.model_release_ids);
    out.simple_opt(
        "plus:MinorModelAgeDisclosure",
        input
            .minor_model_age
            .as_deref()
            .and_then(plus_uri)
            .as_deref(),
    );
    out.lang_alt("plus:OtherConstraints", input.other_constraints.as_deref());

    let licensors: Vec<String> = rights.licensors.iter().filter_map(|n| clean(n)).collect();
    if !licensors.is_empty() {
        out.open("plus:Licensor");
        out.open("rdf:Seq");
        for name in &licensors {
            out.open("rdf:li rdf:parseType=\"Resource\"");
            out.simple("plus:LicensorName", name);
            out.close("rdf:li");
        }
        out.close("rdf:Seq");
        out.close("plus:Licensor");
    }
    out.simple_opt("plus:LicenseStartDate", rights.licence_start.as_deref());
    out.simple_opt("plus:LicenseEndDate", rights.licence_end.as_deref());
    out.simple_opt("plus:LicenseID", rights.licence_id.as_deref());
    out.lang_alt("plus:RegionConstraints", rights.territory.as_deref());

    out.close("rdf:Description");
    out.close("rdf:RDF");
    out.close("x:xmpmeta");
    out.line("<?xpacket end=\"w\"?>");
    out.buf
}

/// `Iptc4xmpExt:ImageRegion`: relative rectangles, top-left origin.
fn iptc_regions(out: &mut Out, regions: &[(&SidecarFace, PixelRect)]) {
    out.open("Iptc4xmpExt:ImageRegion");
    out.open("rdf:Bag");
    for (face, area) in regions {
        let name = face.name.as_deref().and_then(clean);
        out.open("rdf:li rdf:parseType=\"Resource\"");
        out.open("Iptc4xmpExt:RegionBoundary rdf:parseType=\"Resource\"");
        out.simple("Iptc4xmpExt:rbShape", "rectangle");
        out.simple("Iptc4xmpExt:rbUnit", "relative");
        out.simple("Iptc4xmpExt:rbX", &number(area.x));
        out.simple("Iptc4xmpExt:rbY", &number(area.y));
        out.simple("Iptc4xmpExt:rbW", &number(area.width));
        out.simple("Iptc4xmpExt:rbH", &number(area.height));
        out.close("Iptc4xmpExt:RegionBoundary");
        out.simple_opt("Iptc4xmpExt:rId", Some(&face.region_id));
        out.lang_alt("Iptc4xmpExt:Name", name.as_deref());
        out.open("Iptc4xmpExt:rCtype");
        out.open("rdf:Bag");
        out.open("rdf:li rdf:parseType=\"Resource\"");
        out.array("xmp:Identifier", "Bag", &[IPTC_HUMAN.to_owned()]);
        out.lang_alt("Iptc4xmpExt:Name", Some("Human"));
        out.close("rdf:li");
        out.close("rdf:Bag");
        out.close("Iptc4xmpExt:rCtype");
        if let Some(name) = &name {
            out.array(
                "Iptc4xmpExt:PersonInImage",
                "Bag",
                std::slice::from_ref(name),
            );
        }
        out.close("rdf:li");
    }
    out.close("rdf:Bag");
    out.close("Iptc4xmpExt:ImageRegion");
}

/// `mwg-rs:Regions`: centre-based normalised areas on the stored image.
fn mwg_regions(out: &mut Out, regions: &[(&SidecarFace, PixelRect)], stored: (u32, u32)) {
    out.open("mwg-rs:Regions rdf:parseType=\"Resource\"");
    out.open("mwg-rs:AppliedToDimensions rdf:parseType=\"Resource\"");
    out.simple("stDim:w", &stored.0.to_string());
    out.simple("stDim:h", &stored.1.to_string());
    out.simple("stDim:unit", "pixel");
    out.close("mwg-rs:AppliedToDimensions");
    out.open("mwg-rs:RegionList");
    out.open("rdf:Bag");
    for (face, area) in regions {
        out.open("rdf:li rdf:parseType=\"Resource\"");
        out.open("mwg-rs:Area rdf:parseType=\"Resource\"");
        out.simple("stArea:x", &number(area.x + area.width / 2.0));
        out.simple("stArea:y", &number(area.y + area.height / 2.0));
        out.simple("stArea:w", &number(area.width));
        out.simple("stArea:h", &number(area.height));
        out.simple("stArea:unit", "normalized");
        out.close("mwg-rs:Area");
        out.simple("mwg-rs:Type", "Face");
        out.simple_opt("mwg-rs:Name", face.name.as_deref());
        out.close("rdf:li");
    }
    out.close("rdf:Bag");
    out.close("mwg-rs:RegionList");
    out.close("mwg-rs:Regions");
}

/// A PLUS code as its vocabulary URI; a URI is kept as it is.
fn plus_uri(code: &str) -> Option<String> {
    let code = clean(code)?;
    if code.starts_with("http://") || code.starts_with("https://") {
        Some(code)
    } else {
        Some(format!("{PLUS_VOCAB}{code}"))
    }
}

/// A normalised coordinate: nine decimals (well below a pixel of any image),
/// trailing zeros cut.
fn number(value: f64) -> String {
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A value without the characters XML cannot carry, trimmed; `None` when blank.
fn clean(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || !(c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}')
        })
        .collect();
    let text = kept.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The clean values, each once, in order.
fn distinct(values: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    for value in values.iter().filter_map(|v| clean(v)) {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

/// Escapes text for element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// The packet being written, one element a line, indented.
#[derive(Default)]
struct Out {
    buf: String,
    depth: usize,
}

impl Out {
    fn line(&mut self, text: &str) {
        for _ in 0..self.depth {
            self.buf.push(' ');
        }
        self.buf.push_str(text);
        self.buf.push('\n');
    }

    /// `tag` with its attributes, already escaped.
    fn open(&mut self, tag: &str) {
        self.line(&format!("<{tag}>"));
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.line(&format!("</{name}>"));
    }

    /// A simple property; `value` is cleaned and escaped here.
    fn simple(&mut self, name: &str, value: &str) {
        if let Some(value) = clean(value) {
            self.line(&format!("<{name}>{}</{name}>", escape(&value)));
        }
    }

    fn simple_opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.simple(name, value);
        }
    }

    /// A language alternative with one `x-default` item.
    fn lang_alt(&mut self, name: &str, value: Option<&str>) {
        let Some(value) = value.and_then(clean) else {
            return;
        };
        self.open(name);
        self.open("rdf:Alt");
        self.line(&format!(
            "<rdf:li xml:lang=\"x-default\">{}</rdf:li>",
            escape(&value)
        ));
        self.close("rdf:Alt");
        self.close(name);
    }

    /// A `Bag` or `Seq` of texts; nothing when none is left after cleaning.
    fn array(&mut self, name: &str, kind: &str, values: &[String]) {
        let values: Vec<String> = values.iter().filter_map(|v| clean(v)).collect();
        if values.is_empty() {
            return;
        }
        self.open(name);
        self.open(&format!("rdf:{kind}"));
        for value in &values {
            self.line(&format!("<rdf:li>{}</rdf:li>", escape(value)));
        }
        self.close(&format!("rdf:{kind}"));
        self.close(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::metadata::{
        Metadata, NormalizedRect, Region, RegionKind, RegionSource, apply_sidecar_with_image_size,
    };

    const ZOE: &str = "Zoë & Søren <co>";
    const ANN: &str = "Ann \"the\" O'Neil";
    /// The stored image of [`sample`]: 4000×3000 pixels, two faces on it.
    const STORED: (u32, u32) = (4000, 3000);
    const FACE_A: PixelRect = rect(800.0, 2100.0, 400.0, 300.0);
    const FACE_B: PixelRect = rect(200.0, 2850.0, 60.0, 50.0);

    const fn rect(x: f64, y: f64, width: f64, height: f64) -> PixelRect {
        PixelRect {
            x,
            y,
            width,
            height,
        }
    }

    fn face_box(r: PixelRect) -> FaceBox {
        FaceBox {
            x: r.x as f32,
            y: r.y as f32,
            width: r.width as f32,
            height: r.height as f32,
        }
    }

    fn close(a: PixelRect, b: PixelRect, tolerance: f64) -> bool {
        (a.x - b.x).abs() <= tolerance
            && (a.y - b.y).abs() <= tolerance
            && (a.width - b.width).abs() <= tolerance
            && (a.height - b.height).abs() <= tolerance
    }

    /// Faces A and B as they show on the displayed image, worked out by hand
    /// from the stored boxes for a few orientations.
    fn displayed_faces(orientation: u16) -> ((u32, u32), [PixelRect; 2]) {
        match orientation {
            1 => ((4000, 3000), [FACE_A, FACE_B]),
            // Half turn: (W - x - w, H - y - h).
            3 => (
                (4000, 3000),
                [
                    rect(2800.0, 600.0, 400.0, 300.0),
                    rect(3740.0, 100.0, 60.0, 50.0),
                ],
            ),
            // Quarter turn clockwise: (H - y - h, x), w and h swapped.
            6 => (
                (3000, 4000),
                [
                    rect(600.0, 800.0, 300.0, 400.0),
                    rect(100.0, 200.0, 50.0, 60.0),
                ],
            ),
            // Quarter turn anticlockwise: (y, W - x - w), w and h swapped.
            8 => (
                (3000, 4000),
                [
                    rect(2100.0, 2800.0, 300.0, 400.0),
                    rect(2850.0, 3740.0, 50.0, 60.0),
                ],
            ),
            _ => unreachable!("no hand-computed sample for orientation {orientation}"),
        }
    }

    fn sample(orientation: u16) -> SidecarInput {
        let ((dw, dh), [a, b]) = displayed_faces(orientation);
        SidecarInput {
            displayed_width: dw,
            displayed_height: dh,
            orientation,
            faces: vec![
                SidecarFace {
                    bbox: face_box(a),
                    name: Some(ZOE.to_owned()),
                    region_id: "face-1".to_owned(),
                },
                SidecarFace {
                    bbox: face_box(b),
                    name: None,
                    region_id: "face-2".to_owned(),
                },
            ],
            persons_in_image: vec![ZOE.to_owned(), ANN.to_owned()],
            model_release_status: Some("MR-UMR".to_owned()),
            model_release_ids: vec!["REL-1".to_owned(), "REL <2> & more".to_owned()],
            minor_model_age: Some("AG-U14".to_owned()),
            other_constraints: Some("Release of \"Ann\" limited".to_owned()),
            rights: SidecarRights {
                creators: vec![
                    "Photographer Ø".to_owned(),
                    "Second <Creator> & 'Co'".to_owned(),
                ],
                copyright: Some("© 2024 Example & Co".to_owned()),
                credit: Some("Example <Credit>".to_owned()),
                usage_terms: Some("Internal use only; no \"press\"".to_owned()),
                web_statement: Some("https://example.org/rights?a=1&b=2".to_owned()),
                licensors: vec!["Licensor <One>".to_owned(), "Licensør Two".to_owned()],
                licence_start: Some("2024-01-01".to_owned()),
                licence_end: Some("2026-12-31".to_owned()),
                licence_id: Some("L-42".to_owned()),
                territory: Some("EU & EEA only".to_owned()),
            },
        }
    }

    fn read_back(xmp: &str, stored: (u32, u32)) -> Metadata {
        let mut md = Metadata::default();
        apply_sidecar_with_image_size(&mut md, xmp.as_bytes(), Some(stored))
            .unwrap_or_else(|e| panic!("our reader refuses the sidecar: {e}\n{xmp}"));
        md
    }

    // ---- orientation -------------------------------------------------------

    /// A stored box (2, 3, 10, 5) on a 40×30 stored image, and where it shows
    /// for each orientation, worked out by hand.
    const HAND: [(u16, (u32, u32), PixelRect); 8] = [
        (1, (40, 30), rect(2.0, 3.0, 10.0, 5.0)),
        (2, (40, 30), rect(28.0, 3.0, 10.0, 5.0)),
        (3, (40, 30), rect(28.0, 22.0, 10.0, 5.0)),
        (4, (40, 30), rect(2.0, 22.0, 10.0, 5.0)),
        (5, (30, 40), rect(3.0, 2.0, 5.0, 10.0)),
        (6, (30, 40), rect(22.0, 2.0, 5.0, 10.0)),
        (7, (30, 40), rect(22.0, 28.0, 5.0, 10.0)),
        (8, (30, 40), rect(3.0, 28.0, 5.0, 10.0)),
    ];
    const HAND_STORED: PixelRect = rect(2.0, 3.0, 10.0, 5.0);

    #[test]
    fn orientation_hand_computed_for_all_eight() {
        for (orientation, displayed, shown) in HAND {
            assert_eq!(
                stored_size(displayed, orientation),
                (40, 30),
                "{orientation}"
            );
            assert_eq!(
                displayed_to_stored(shown, displayed, orientation),
                HAND_STORED,
                "orientation {orientation}"
            );
            assert_eq!(
                stored_to_displayed(HAND_STORED, (40, 30), orientation),
                shown,
                "orientation {orientation}"
            );
        }
        // Not an orientation: as stored.
        for orientation in [0, 9, 65535] {
            assert_eq!(stored_size((40, 30), orientation), (40, 30));
            assert_eq!(
                displayed_to_stored(HAND_STORED, (40, 30), orientation),
                HAND_STORED
            );
        }
    }

    #[test]
    fn orientation_round_trips_for_all_eight() {
        let boxes = [
            rect(0.0, 0.0, 1.0, 1.0),
            rect(12.5, 7.25, 33.0, 20.5),
            rect(99.0, 0.0, 1.0, 60.0),
            rect(0.0, 59.0, 100.0, 1.0),
            rect(47.1, 13.9, 2.2, 31.7),
        ];
        for orientation in 1..=8 {
            let stored = (100, 60);
            let displayed = stored_size(stored, orientation); // the swap is its own inverse
            for b in boxes {
                let shown = stored_to_displayed(b, stored, orientation);
                assert!(
                    shown.x >= 0.0
                        && shown.y >= 0.0
                        && shown.x + shown.width <= f64::from(displayed.0) + 1e-9
                        && shown.y + shown.height <= f64::from(displayed.1) + 1e-9,
                    "orientation {orientation}: {b:?} shows outside the image as {shown:?}"
                );
                let back = displayed_to_stored(shown, displayed, orientation);
                assert!(
                    close(back, b, 1e-9),
                    "orientation {orientation}: {b:?} → {shown:?} → {back:?}"
                );
            }
        }
    }

    /// The conversion agrees with what the decoder does to the pixels.
    #[test]
    fn orientation_agrees_with_the_decoder() {
        use crate::pipeline::decode::{apply_orientation, mat_size};
        use opencv::core::{self as cv, Mat};
        use opencv::prelude::*;

        let (w, h) = (40usize, 30usize);
        for orientation in 1..=8u16 {
            let mut stored =
                Mat::new_rows_cols_with_default(30, 40, cv::CV_8UC1, cv::Scalar::all(0.0))
                    .expect("a Mat");
            let data = stored.data_bytes_mut().expect("continuous");
            for y in 3..8 {
                for x in 2..12 {
                    data[y * w + x] = 255;
                }
            }
            assert_eq!(data.len(), w * h);
            let shown = apply_orientation(stored, orientation).expect("oriented");
            let (dw, dh) = mat_size(&shown);
            let (dw, dh) = (dw as usize, dh as usize);
            let pixels = shown.data_bytes().expect("continuous");
            let lit: Vec<(usize, usize)> = (0..dh)
                .flat_map(|y| (0..dw).map(move |x| (x, y)))
                .filter(|&(x, y)| pixels[y * dw + x] == 255)
                .collect();
            let x0 = lit.iter().map(|p| p.0).min().expect("box visible");
            let x1 = lit.iter().map(|p| p.0).max().expect("box visible") + 1;
            let y0 = lit.iter().map(|p| p.1).min().expect("box visible");
            let y1 = lit.iter().map(|p| p.1).max().expect("box visible") + 1;
            let found = rect(x0 as f64, y0 as f64, (x1 - x0) as f64, (y1 - y0) as f64);
            assert_eq!(
                stored_to_displayed(HAND_STORED, (40, 30), orientation),
                found,
                "orientation {orientation}"
            );
            let displayed = (dw as u32, dh as u32);
            assert_eq!(
                displayed_to_stored(found, displayed, orientation),
                HAND_STORED,
                "orientation {orientation}"
            );
        }
    }

    // ---- our reader --------------------------------------------------------

    /// Faces A and B on the stored image, normalised.
    const AREA_A: NormalizedRect = NormalizedRect {
        x: 0.2,
        y: 0.7,
        w: 0.1,
        h: 0.1,
    };
    const AREA_B: NormalizedRect = NormalizedRect {
        x: 0.05,
        y: 0.95,
        w: 0.015,
        h: 50.0 / 3000.0,
    };

    fn assert_area(region: &Region, expected: NormalizedRect, what: &str) {
        let area = region.area.unwrap_or_else(|| panic!("{what}: no area"));
        for (got, want) in [
            (area.x, expected.x),
            (area.y, expected.y),
            (area.w, expected.w),
            (area.h, expected.h),
        ] {
            assert!(
                (got - want).abs() < 1e-6,
                "{what}: {area:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn round_trip_through_our_reader() {
        for orientation in [1, 3, 6, 8] {
            let input = sample(orientation);
            let xmp = sidecar(&input);
            let md = read_back(&xmp, STORED);
            let what = format!("orientation {orientation}");
            assert!(md.warnings.is_empty(), "{what}: {:?}", md.warnings);

            // MWG first, then IPTC; each face once in each.
            let summary: Vec<(RegionSource, RegionKind, Option<&str>)> = md
                .regions
                .iter()
                .map(|r| (r.source, r.kind, r.name.as_deref()))
                .collect();
            assert_eq!(
                summary,
                [
                    (RegionSource::Mwg, RegionKind::Face, Some(ZOE)),
                    (RegionSource::Mwg, RegionKind::Face, None),
                    (RegionSource::Iptc, RegionKind::Face, Some(ZOE)),
                    (RegionSource::Iptc, RegionKind::Face, None),
                ],
                "{what}"
            );
            for (region, expected) in md.regions.iter().zip([AREA_A, AREA_B, AREA_A, AREA_B]) {
                assert_area(region, expected, &format!("{what}, {:?}", region.source));
            }
            // The IPTC boxes are relative: they need no image size.
            let mut sizeless = Metadata::default();
            crate::pipeline::metadata::apply_sidecar(&mut sizeless, xmp.as_bytes()).unwrap();
            assert_eq!(sizeless.regions, md.regions, "{what}");

            assert_eq!(
                md.orientation,
                (orientation != 1).then_some(orientation),
                "{what}"
            );
            assert_eq!(md.person_in_image, [ZOE, ANN], "{what}");
            assert_eq!(md.model_release_status.as_deref(), Some("MR-UMR"));
            assert_eq!(md.model_release_ids, input.model_release_ids);
            assert_eq!(md.minor_model_age.as_deref(), Some("AG-U14"));
            assert_eq!(md.creator, input.rights.creators);
            assert_eq!(md.copyright, input.rights.copyright);
            assert_eq!(md.credit, input.rights.credit);
            let licence = &md.licence;
            assert_eq!(licence.license_end_date.as_deref(), Some("2026-12-31"));
            assert_eq!(licence.license_start_date.as_deref(), Some("2024-01-01"));
            assert_eq!(licence.license_id.as_deref(), Some("L-42"));
            assert_eq!(licence.licensors, input.rights.licensors);
            assert_eq!(licence.usage_terms, input.rights.usage_terms);
            assert_eq!(licence.web_statement, input.rights.web_statement);
            assert_eq!(licence.other_constraints, input.other_constraints);
        }
    }

    #[test]
    fn text_is_cleaned_and_escaped() {
        let input = SidecarInput {
            persons_in_image: vec![
                "A".to_owned(),
                " A ".to_owned(),
                "   ".to_owned(),
                "B\u{1}]]>".to_owned(),
            ],
            model_release_status: Some("https://ns.useplus.org/ldf/vocab/MR-LMR".to_owned()),
            minor_model_age: Some("  ".to_owned()),
            rights: SidecarRights {
                copyright: Some("a\u{1}b\r\nc\u{FFFF}".to_owned()),
                creators: vec![String::new()],
                ..SidecarRights::default()
            },
            ..SidecarInput::default()
        };
        let xmp = sidecar(&input);
        assert!(!xmp.contains('\u{1}') && !xmp.contains('\u{FFFF}'), "{xmp}");
        let md = read_back(&xmp, (1, 1));
        assert!(md.warnings.is_empty(), "{:?}", md.warnings);
        assert_eq!(md.person_in_image, ["A", "B]]>"]);
        assert_eq!(md.copyright.as_deref(), Some("ab\r\nc"));
        assert_eq!(md.model_release_status.as_deref(), Some("MR-LMR"));
        assert_eq!(md.minor_model_age, None);
        assert!(md.creator.is_empty());
        assert!(
            !xmp.contains("dc:creator") && !xmp.contains("MinorModelAge"),
            "{xmp}"
        );
    }

    #[test]
    fn boxes_are_clipped_to_the_image_and_empty_ones_left_out() {
        let face = |x, y, width, height| SidecarFace {
            bbox: FaceBox {
                x,
                y,
                width,
                height,
            },
            name: Some("Edge".to_owned()),
            region_id: "face-9".to_owned(),
        };
        let input = SidecarInput {
            displayed_width: 100,
            displayed_height: 50,
            orientation: 1,
            faces: vec![
                face(-10.0, 10.0, 20.0, 20.0),
                face(200.0, 10.0, 10.0, 10.0),
                face(f32::NAN, 10.0, 10.0, 10.0),
                face(10.0, 10.0, 0.0, 10.0),
            ],
            ..SidecarInput::default()
        };
        let md = read_back(&sidecar(&input), (100, 50));
        assert!(md.warnings.is_empty(), "{:?}", md.warnings);
        assert_eq!(md.regions.len(), 2, "{:?}", md.regions);
        for region in &md.regions {
            assert_area(
                region,
                NormalizedRect {
                    x: 0.0,
                    y: 0.2,
                    w: 0.1,
                    h: 0.4,
                },
                "clipped",
            );
        }
        // Without a displayed size nothing can be placed.
        let no_size = SidecarInput {
            displayed_width: 0,
            ..input
        };
        let xmp = sidecar(&no_size);
        assert!(!xmp.contains("mwg-rs:Regions") && !xmp.contains("ImageRegion"));
    }

    #[test]
    fn an_empty_packet_is_valid_xmp() {
        let xmp = sidecar(&SidecarInput::default());
        assert!(xmp.contains("<x:xmpmeta") && xmp.contains("<rdf:RDF"));
        let md = read_back(&xmp, (1, 1));
        assert_eq!(md, Metadata::default());
        let Some(json) = exiftool(&xmp, "empty") else {
            return;
        };
        assert_eq!(json["ExifTool:Validate"], "OK", "{json:#}");
        assert!(json.get("ExifTool:Warning").is_none(), "{json:#}");
        assert_eq!(json["File:FileType"], "XMP", "{json:#}");
        let xmp_tags: Vec<&String> = json
            .as_object()
            .expect("an object")
            .keys()
            .filter(|k| k.starts_with("XMP-") && *k != "XMP-x:XMPToolkit")
            .collect();
        assert!(xmp_tags.is_empty(), "{xmp_tags:?}");
    }

    // ---- exiftool ----------------------------------------------------------

    /// `exiftool -j -struct -G1` on the packet written to a file, with the
    /// `ExifTool:Validate` verdict and any `ExifTool:Warning` of `-validate`;
    /// `None` (said visibly) when exiftool is not installed, unless
    /// `CONSENTRY_REQUIRE_TESTDATA` is set.
    fn exiftool(xmp: &str, name: &str) -> Option<serde_json::Value> {
        use std::process::Command;
        if Command::new("exiftool").arg("-ver").output().is_err() {
            let required = std::env::var("CONSENTRY_REQUIRE_TESTDATA")
                .is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !required,
                "exiftool not found (Debian: libimage-exiftool-perl) and CONSENTRY_REQUIRE_TESTDATA is set"
            );
            eprintln!("skipped: exiftool not installed (Debian: libimage-exiftool-perl)");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(format!("{name}.xmp"));
        std::fs::write(&path, xmp).expect("sidecar written");
        let run = |args: &[&str]| -> serde_json::Value {
            let out = Command::new("exiftool")
                .args(args)
                .arg(&path)
                .output()
                .expect("exiftool runs");
            assert!(
                out.status.success(),
                "exiftool failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("exiftool -j gives JSON");
            json[0].clone()
        };
        let mut tags = run(&["-j", "-struct", "-G1"]);
        // `-validate` prints only its verdict and the warnings: a second run.
        let verdict = run(&["-j", "-G1", "-a", "-validate", "-warning"]);
        let object = tags.as_object_mut().expect("an object");
        for (key, value) in verdict.as_object().expect("an object") {
            if key.starts_with("ExifTool:") {
                object.insert(key.clone(), value.clone());
            }
        }
        Some(tags)
    }

    /// A number exiftool printed as a number or as text.
    fn number_of(value: &serde_json::Value) -> f64 {
        match value {
            serde_json::Value::Number(n) => n.as_f64().expect("a number"),
            serde_json::Value::String(s) => s.parse().expect("a number"),
            other => panic!("not a number: {other}"),
        }
    }

    /// A list tag (or a lone value) as texts.
    fn texts_of(value: &serde_json::Value) -> Vec<String> {
        match value {
            serde_json::Value::Array(items) => items.iter().flat_map(texts_of).collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Null => Vec::new(),
            other => vec![other.to_string()],
        }
    }

    #[test]
    fn exiftool_reads_what_we_write() {
        for orientation in [1, 3, 6, 8] {
            let input = sample(orientation);
            let xmp = sidecar(&input);
            let Some(json) = exiftool(&xmp, &format!("orientation-{orientation}")) else {
                return;
            };
            let what = format!("orientation {orientation}: {json:#}");
            assert_eq!(json["ExifTool:Validate"], "OK", "{what}");
            assert!(json.get("ExifTool:Warning").is_none(), "{what}");

            // MWG: stored dimensions, centre-based normalised areas.
            let info = &json["XMP-mwg-rs:RegionInfo"];
            let dims = &info["AppliedToDimensions"];
            assert_eq!(
                (number_of(&dims["W"]), number_of(&dims["H"]), &dims["Unit"]),
                (4000.0, 3000.0, &serde_json::Value::from("pixel")),
                "{what}"
            );
            let list = info["RegionList"].as_array().expect("a region list");
            let names: Vec<Vec<String>> = list.iter().map(|r| texts_of(&r["Name"])).collect();
            assert_eq!(names, [vec![ZOE.to_owned()], vec![]], "{what}");
            for (region, expected) in list.iter().zip([FACE_A, FACE_B]) {
                assert_eq!(region["Type"], "Face", "{what}");
                let area = &region["Area"];
                assert_eq!(area["Unit"], "normalized", "{what}");
                let (w, h) = (
                    number_of(&area["W"]) * 4000.0,
                    number_of(&area["H"]) * 3000.0,
                );
                let found = rect(
                    number_of(&area["X"]) * 4000.0 - w / 2.0,
                    number_of(&area["Y"]) * 3000.0 - h / 2.0,
                    w,
                    h,
                );
                assert!(
                    close(found, expected, 0.5),
                    "{found:?} vs {expected:?} in {what}"
                );
            }

            // IPTC: relative top-left rectangles, human, named by the person.
            let regions = json["XMP-iptcExt:ImageRegion"]
                .as_array()
                .expect("image regions");
            assert_eq!(regions.len(), 2, "{what}");
            for (region, (expected, id, name)) in regions
                .iter()
                .zip([(FACE_A, "face-1", Some(ZOE)), (FACE_B, "face-2", None)])
            {
                assert_eq!(region["RId"], id, "{what}");
                assert_eq!(
                    texts_of(&region["PersonInImage"]),
                    name.into_iter().collect::<Vec<_>>(),
                    "{what}"
                );
                assert_eq!(
                    texts_of(&region["RCtype"][0]["Identifier"]),
                    [IPTC_HUMAN],
                    "{what}"
                );
                let b = &region["RegionBoundary"];
                assert_eq!(
                    (&b["RbShape"], &b["RbUnit"]),
                    (&"Rectangle".into(), &"Relative".into())
                );
                let found = rect(
                    number_of(&b["RbX"]) * 4000.0,
                    number_of(&b["RbY"]) * 3000.0,
                    number_of(&b["RbW"]) * 4000.0,
                    number_of(&b["RbH"]) * 3000.0,
                );
                assert!(
                    close(found, expected, 0.5),
                    "{found:?} vs {expected:?} in {what}"
                );
            }

            assert_eq!(
                texts_of(&json["XMP-iptcExt:PersonInImage"]),
                [ZOE, ANN],
                "{what}"
            );
            // Printed values: the vocabulary URIs were understood.
            assert_eq!(
                json["XMP-plus:ModelReleaseStatus"], "Unlimited Model Releases",
                "{what}"
            );
            assert_eq!(
                json["XMP-plus:MinorModelAgeDisclosure"], "Age 14 or Under",
                "{what}"
            );
            assert_eq!(
                texts_of(&json["XMP-plus:ModelReleaseID"]),
                input.model_release_ids,
                "{what}"
            );
            assert_eq!(json["XMP-plus:LicenseEndDate"], "2026:12:31", "{what}");
            assert_eq!(json["XMP-plus:LicenseStartDate"], "2024:01:01", "{what}");
            assert_eq!(json["XMP-plus:LicenseID"], "L-42", "{what}");
            assert_eq!(
                json["XMP-plus:RegionConstraints"], "EU & EEA only",
                "{what}"
            );
            assert_eq!(
                json["XMP-plus:OtherConstraints"], "Release of \"Ann\" limited",
                "{what}"
            );
            let licensors: Vec<String> = json["XMP-plus:Licensor"]
                .as_array()
                .expect("licensors")
                .iter()
                .flat_map(|l| texts_of(&l["LicensorName"]))
                .collect();
            assert_eq!(licensors, input.rights.licensors, "{what}");
            assert_eq!(json["XMP-dc:Rights"], "© 2024 Example & Co", "{what}");
            assert_eq!(
                texts_of(&json["XMP-dc:Creator"]),
                input.rights.creators,
                "{what}"
            );
            assert_eq!(json["XMP-photoshop:Credit"], "Example <Credit>", "{what}");
            assert_eq!(
                json["XMP-xmpRights:UsageTerms"], "Internal use only; no \"press\"",
                "{what}"
            );
            assert_eq!(
                json["XMP-xmpRights:WebStatement"], "https://example.org/rights?a=1&b=2",
                "{what}"
            );
            let orientation_tag = json.get("XMP-tiff:Orientation");
            assert_eq!(orientation_tag.is_some(), orientation != 1, "{what}");
        }
    }
}
