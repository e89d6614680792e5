//! XMP: decoding a packet, parsing its RDF into a small property tree, and
//! extracting the fields consentry keeps.
//!
//! The RDF reader accepts the forms XMP writers use: simple properties as
//! attributes of `rdf:Description` or as child elements; `rdf:Bag`, `rdf:Seq`
//! and `rdf:Alt` arrays; structs as `rdf:parseType="Resource"`, as a nested
//! `rdf:Description`, or as attributes of the property element; qualified
//! values (`rdf:value`); `rdf:resource` URIs; any number of `rdf:Description`
//! blocks. Everything is matched by namespace URI.

use std::borrow::Cow;
use std::collections::BTreeMap;

use roxmltree::{Document, Node, ParsingOptions};

use super::{
    CaptureTime, Gps, LicenceFields, Metadata, MetadataError, NormalizedRect, Region, RegionKind,
    RegionSource, checked_gps, checked_orientation, clean_text, quote, stamp_or_warn,
};

/// Namespace URIs (see `shared/design/metadata.md`).
pub(super) mod ns {
    pub const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
    pub const DC: &str = "http://purl.org/dc/elements/1.1/";
    pub const XMP: &str = "http://ns.adobe.com/xap/1.0/";
    pub const XMP_RIGHTS: &str = "http://ns.adobe.com/xap/1.0/rights/";
    pub const PHOTOSHOP: &str = "http://ns.adobe.com/photoshop/1.0/";
    pub const EXIF: &str = "http://ns.adobe.com/exif/1.0/";
    pub const TIFF: &str = "http://ns.adobe.com/tiff/1.0/";
    pub const IPTC_EXT: &str = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/";
    pub const PLUS: &str = "http://ns.useplus.org/ldf/xmp/1.0/";
    pub const MWG_RS: &str = "http://www.metadataworkinggroup.com/schemas/regions/";
    pub const ST_AREA: &str = "http://ns.adobe.com/xmp/sType/Area#";
    pub const ST_DIM: &str = "http://ns.adobe.com/xap/1.0/sType/Dimensions#";
    pub const MP: &str = "http://ns.microsoft.com/photo/1.2/";
    pub const MPRI: &str = "http://ns.microsoft.com/photo/1.2/t/RegionInfo#";
    pub const MPREG: &str = "http://ns.microsoft.com/photo/1.2/t/Region#";
}

/// Largest packet (or sidecar) accepted, in bytes. Real packets, even with
/// Photoshop's notorious `DocumentAncestors` lists, stay well below.
pub(super) const MAX_PACKET_BYTES: usize = 16 << 20;
/// Most XML nodes in one packet (bounds the parser's memory).
const MAX_NODES: u32 = 2_000_000;
/// Most work (see [`superlinear_parse_cost`]) the XML parser may be asked for:
/// about a tenth of a second.
const MAX_PARSE_COST: u64 = 50_000_000;
/// Deepest nesting of property values followed.
const MAX_DEPTH: usize = 48;
/// Most regions kept from one packet.
const MAX_REGIONS: usize = 1000;
/// Controlled PLUS values are URIs under this prefix (`http` or `https`).
const PLUS_VOCAB: &str = "//ns.useplus.org/ldf/vocab/";
/// IPTC region content types (`rCtype`) that mean a person or an animal.
const IPTC_REGION_TYPES: &str = "//cv.iptc.org/newscodes/imageregiontype/";

/// A property value in the RDF data model of XMP.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Text(String),
    Array { kind: ArrayKind, items: Vec<Item> },
    Struct(Vec<Property>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArrayKind {
    Bag,
    Seq,
    Alt,
}

/// An array item with its `xml:lang` qualifier.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Item {
    pub lang: Option<String>,
    pub value: Value,
}

/// A named property (namespace URI + local name).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Property {
    pub ns: String,
    pub name: String,
    pub value: Value,
}

/// The top-level properties of one or more packets, by (namespace URI, name);
/// the first of a name wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Packet {
    props: BTreeMap<(String, String), Value>,
}

impl Packet {
    /// Decodes and parses one packet; the warnings are about lesser damage
    /// (bad text encoding, nesting too deep).
    pub(super) fn parse(bytes: &[u8]) -> Result<(Packet, Vec<String>), MetadataError> {
        let mut warnings = Vec::new();
        if bytes.len() > MAX_PACKET_BYTES {
            return Err(MetadataError::TooLarge {
                size: bytes.len(),
                limit: MAX_PACKET_BYTES,
            });
        }
        let text = decode(bytes, &mut warnings);
        let xml = isolate(&text);
        if xml.is_empty() {
            return Err(MetadataError::Empty);
        }
        if superlinear_parse_cost(&xml) > MAX_PARSE_COST {
            return Err(MetadataError::TooComplex);
        }
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(&xml, options)
            .map_err(|err| MetadataError::Xml(err.to_string()))?;
        let rdf = doc
            .descendants()
            .find(|n| n.is_element() && n.has_tag_name((ns::RDF, "RDF")))
            .ok_or(MetadataError::NoRdf)?;
        let mut reader = RdfReader { too_deep: false };
        let mut packet = Packet::default();
        for node in rdf.children().filter(Node::is_element) {
            for prop in reader.node_properties(node, 0) {
                packet.add(prop);
            }
        }
        if reader.too_deep {
            warnings.push(format!(
                "XMP nested deeper than {MAX_DEPTH} levels; the deeper values are ignored"
            ));
        }
        Ok((packet, warnings))
    }

    /// Merges packets (main packet first); `None` when there are none.
    pub(super) fn merge_all(packets: Vec<Packet>) -> Option<Packet> {
        let mut packets = packets.into_iter();
        let mut merged = packets.next()?;
        for packet in packets {
            for (key, value) in packet.props {
                merged.props.entry(key).or_insert(value);
            }
        }
        Some(merged)
    }

    fn add(&mut self, prop: Property) {
        self.props.entry((prop.ns, prop.name)).or_insert(prop.value);
    }

    pub(super) fn get(&self, ns: &str, name: &str) -> Option<&Value> {
        self.props.get(&(ns.to_owned(), name.to_owned()))
    }

    fn text(&self, ns: &str, name: &str) -> Option<String> {
        self.get(ns, name).and_then(Value::text)
    }

    fn texts(&self, ns: &str, name: &str) -> Vec<String> {
        self.get(ns, name).map(Value::texts).unwrap_or_default()
    }
}

fn find<'a>(props: &'a [Property], ns: &str, name: &str) -> Option<&'a Value> {
    props
        .iter()
        .find(|p| p.ns == ns && p.name == name)
        .map(|p| &p.value)
}

impl Value {
    /// A struct field.
    pub(super) fn field(&self, ns: &str, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(props) => find(props, ns, name),
            _ => None,
        }
    }

    fn field_text(&self, ns: &str, name: &str) -> Option<String> {
        self.field(ns, name).and_then(Value::text)
    }

    fn field_number(&self, ns: &str, name: &str) -> Option<f64> {
        self.field_text(ns, name).and_then(|t| parse_number(&t))
    }

    /// One text: a simple value; for a language alternative the `x-default`
    /// (or else the first) item; for another array its first item.
    pub(super) fn text(&self) -> Option<String> {
        match self {
            Value::Text(text) => clean_text(text),
            Value::Array {
                kind: ArrayKind::Alt,
                items,
            } => items
                .iter()
                .find(|item| {
                    item.lang
                        .as_deref()
                        .is_some_and(|l| l.eq_ignore_ascii_case("x-default"))
                })
                .and_then(|item| item.value.text())
                .or_else(|| items.iter().find_map(|item| item.value.text())),
            Value::Array { items, .. } => items.iter().find_map(|item| item.value.text()),
            Value::Struct(_) => None,
        }
    }

    /// All texts: the items of an array, or a simple value alone.
    pub(super) fn texts(&self) -> Vec<String> {
        match self {
            Value::Array { items, .. } => {
                items.iter().filter_map(|item| item.value.text()).collect()
            }
            other => other.text().into_iter().collect(),
        }
    }

    /// The members of an array, or a lone struct written without its array.
    fn members(&self) -> Vec<&Value> {
        match self {
            Value::Array { items, .. } => items.iter().map(|item| &item.value).collect(),
            Value::Struct(_) => vec![self],
            Value::Text(_) => Vec::new(),
        }
    }
}

/// Text of a packet: UTF-8, UTF-16 or UTF-32, by BOM or by the leading `<`.
fn decode<'a>(bytes: &'a [u8], warnings: &mut Vec<String>) -> Cow<'a, str> {
    enum Enc {
        Utf8,
        Utf16 { big: bool },
        Utf32 { big: bool },
    }
    let (enc, skip) = match bytes {
        [0xEF, 0xBB, 0xBF, ..] => (Enc::Utf8, 3),
        [0x00, 0x00, 0xFE, 0xFF, ..] => (Enc::Utf32 { big: true }, 4),
        [0xFF, 0xFE, 0x00, 0x00, ..] => (Enc::Utf32 { big: false }, 4),
        [0xFE, 0xFF, ..] => (Enc::Utf16 { big: true }, 2),
        [0xFF, 0xFE, ..] => (Enc::Utf16 { big: false }, 2),
        [0x00, 0x00, 0x00, b'<', ..] => (Enc::Utf32 { big: true }, 0),
        [b'<', 0x00, 0x00, 0x00, ..] => (Enc::Utf32 { big: false }, 0),
        [0x00, b'<', ..] => (Enc::Utf16 { big: true }, 0),
        [b'<', 0x00, ..] => (Enc::Utf16 { big: false }, 0),
        _ => (Enc::Utf8, 0),
    };
    let body = &bytes[skip..];
    let mut lossy = false;
    let text = match enc {
        Enc::Utf8 => match std::str::from_utf8(body) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                lossy = true;
                String::from_utf8_lossy(body)
            }
        },
        Enc::Utf16 { big } => {
            let units = body.chunks_exact(2).map(|c| {
                if big {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            });
            Cow::Owned(
                char::decode_utf16(units)
                    .map(|c| {
                        c.unwrap_or_else(|_| {
                            lossy = true;
                            char::REPLACEMENT_CHARACTER
                        })
                    })
                    .collect(),
            )
        }
        Enc::Utf32 { big } => Cow::Owned(
            body.chunks_exact(4)
                .map(|c| {
                    let n = if big {
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                    } else {
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    };
                    char::from_u32(n).unwrap_or_else(|| {
                        lossy = true;
                        char::REPLACEMENT_CHARACTER
                    })
                })
                .collect(),
        ),
    };
    if lossy {
        warnings.push("XMP packet has invalid text encoding; bad characters replaced".to_owned());
    }
    text
}

/// The XML of a packet: without BOM, leading junk, NULs (never valid XML),
/// and anything after the `<?xpacket end=...?>` processing instruction (some
/// writers leave the tail of an older, longer packet there).
fn isolate(text: &str) -> Cow<'_, str> {
    let mut xml =
        text.trim_start_matches(|c: char| c == '\u{FEFF}' || c == '\0' || c.is_whitespace());
    if let Some(start) = xml.find('<') {
        xml = &xml[start..];
    }
    if let Some(end) = xml
        .find("<?xpacket end")
        .and_then(|at| xml[at..].find("?>").map(|len| at + len + 2))
    {
        xml = &xml[..end];
    }
    let xml = xml.trim_end_matches(|c: char| c == '\0' || c.is_whitespace());
    if xml.contains('\0') {
        Cow::Owned(xml.replace('\0', ""))
    } else {
        Cow::Borrowed(xml)
    }
}

/// Estimates the work roxmltree does beyond one pass over the text: it checks
/// the attributes of each element pairwise for duplicates, and each element
/// that declares namespaces against every namespace in scope. A crafted packet
/// of a few hundred kilobytes (thousands of nested namespace declarations)
/// would otherwise keep it busy for minutes; real packets cost next to nothing.
/// The scan is approximate but errs towards counting too much.
fn superlinear_parse_cost(xml: &str) -> u64 {
    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }
    let bytes = xml.as_bytes();
    let mut cost = 0u64;
    // Namespace declarations of each open element, and their sum.
    let mut open: Vec<u64> = Vec::new();
    let mut in_scope = 0u64;
    let mut pos = 0;
    while let Some(at) = bytes[pos..].iter().position(|&b| b == b'<') {
        let start = pos + at;
        let rest = &bytes[start..];
        let skip_past = |end: &[u8]| find(rest, end).map_or(bytes.len(), |i| start + i + end.len());
        if rest.starts_with(b"<!--") {
            pos = skip_past(b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            pos = skip_past(b"]]>");
        } else if rest.starts_with(b"<?") {
            pos = skip_past(b"?>");
        } else if rest.starts_with(b"<!") {
            pos = skip_past(b">");
        } else if rest.starts_with(b"</") {
            in_scope = in_scope.saturating_sub(open.pop().unwrap_or(0));
            pos = skip_past(b">");
        } else {
            let (mut attributes, mut declarations, mut quote, mut end) =
                (0u64, 0u64, None, start + 1);
            while let Some(&c) = bytes.get(end) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => break,
                    None if c == b'=' => attributes += 1,
                    None if bytes[end - 1].is_ascii_whitespace()
                        && bytes[end..].starts_with(b"xmlns") =>
                    {
                        declarations += 1
                    }
                    None => {}
                }
                end += 1;
            }
            cost = cost.saturating_add(attributes.saturating_mul(attributes));
            if declarations > 0 {
                let namespaces = in_scope.saturating_add(declarations);
                cost = cost.saturating_add(namespaces.saturating_mul(namespaces));
            }
            if bytes.get(end.saturating_sub(1)) != Some(&b'/') {
                open.push(declarations);
                in_scope = in_scope.saturating_add(declarations);
            }
            pos = (end + 1).min(bytes.len());
        }
    }
    cost
}

struct RdfReader {
    too_deep: bool,
}

impl RdfReader {
    /// Properties of a node element (`rdf:Description`, a `parseType="Resource"`
    /// property, or a property element carrying its fields as attributes).
    fn node_properties(&mut self, node: Node<'_, '_>, depth: usize) -> Vec<Property> {
        let mut props = Vec::new();
        for attr in node.attributes() {
            match attr.namespace() {
                Some(ns::RDF | ns::XML) | None => {}
                Some(ns) => props.push(Property {
                    ns: ns.to_owned(),
                    name: attr.name().to_owned(),
                    value: Value::Text(attr.value().to_owned()),
                }),
            }
        }
        for child in node.children().filter(Node::is_element) {
            let tag = child.tag_name();
            let Some(ns) = tag.namespace() else { continue };
            if ns == ns::RDF && tag.name() != "value" {
                continue; // rdf:type and the like
            }
            props.push(Property {
                ns: ns.to_owned(),
                name: tag.name().to_owned(),
                value: self.property_value(child, depth + 1),
            });
        }
        props
    }

    /// The value of a property element (or of an `rdf:li`).
    fn property_value(&mut self, element: Node<'_, '_>, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            self.too_deep = true;
            return Value::Struct(Vec::new());
        }
        if element.attribute((ns::RDF, "parseType")) == Some("Resource") {
            return self.structure(element, depth);
        }
        if let Some(uri) = element.attribute((ns::RDF, "resource")) {
            return Value::Text(uri.to_owned());
        }
        let Some(first) = element.children().find(Node::is_element) else {
            let has_fields = element
                .attributes()
                .any(|a| !matches!(a.namespace(), Some(ns::RDF | ns::XML) | None));
            return if has_fields {
                self.structure(element, depth)
            } else {
                Value::Text(
                    element
                        .children()
                        .filter(Node::is_text)
                        .filter_map(|n| n.text())
                        .collect(),
                )
            };
        };
        let kind = match (first.tag_name().namespace(), first.tag_name().name()) {
            (Some(ns::RDF), "Bag") => Some(ArrayKind::Bag),
            (Some(ns::RDF), "Seq") => Some(ArrayKind::Seq),
            (Some(ns::RDF), "Alt") => Some(ArrayKind::Alt),
            _ => None,
        };
        if let Some(kind) = kind {
            let items = first
                .children()
                .filter(|n| n.is_element() && n.has_tag_name((ns::RDF, "li")))
                .map(|li| Item {
                    lang: li.attribute((ns::XML, "lang")).map(str::to_owned),
                    value: self.property_value(li, depth + 1),
                })
                .collect();
            return Value::Array { kind, items };
        }
        if first.has_tag_name((ns::RDF, "Description")) {
            return self.structure(first, depth + 1);
        }
        // Fields written directly inside the property element (not RDF, but seen).
        self.structure(element, depth)
    }

    fn structure(&mut self, node: Node<'_, '_>, depth: usize) -> Value {
        let mut props = self.node_properties(node, depth);
        // A qualified simple value: <p><rdf:Description><rdf:value>v</rdf:value><q:x/>...
        match props
            .iter()
            .position(|p| p.ns == ns::RDF && p.name == "value")
        {
            Some(at) => props.swap_remove(at).value,
            None => Value::Struct(props),
        }
    }
}

/// The fields of one (merged) XMP packet as a partial record.
///
/// `label` names the source in capture-time sources and warnings (`XMP`,
/// `sidecar XMP`).
pub(super) fn extract(packet: &Packet, image_size: Option<(u32, u32)>, label: &str) -> Metadata {
    let mut warnings = Vec::new();
    let w = &mut warnings;
    let md = Metadata {
        capture_time: capture_time(packet, label, w),
        camera_make: packet.text(ns::TIFF, "Make"),
        camera_model: packet.text(ns::TIFF, "Model"),
        gps: gps(packet, label, w),
        orientation: packet.text(ns::TIFF, "Orientation").and_then(|raw| {
            match raw.parse::<i64>() {
                Ok(value) => checked_orientation(value, &format!("{label} tiff:Orientation"), w),
                Err(_) => {
                    w.push(format!(
                        "{label} tiff:Orientation {} is not a number; ignored",
                        quote(&raw)
                    ));
                    None
                }
            }
        }),
        title: packet.text(ns::DC, "title"),
        caption: packet.text(ns::DC, "description"),
        creator: packet.texts(ns::DC, "creator"),
        copyright: packet.text(ns::DC, "rights"),
        credit: packet.text(ns::PHOTOSHOP, "Credit"),
        keywords: packet.texts(ns::DC, "subject"),
        person_in_image: packet.texts(ns::IPTC_EXT, "PersonInImage"),
        model_release_status: packet.text(ns::PLUS, "ModelReleaseStatus").map(plus_code),
        model_release_ids: packet.texts(ns::PLUS, "ModelReleaseID"),
        minor_model_age: packet
            .text(ns::PLUS, "MinorModelAgeDisclosure")
            .map(plus_code),
        property_release_status: packet
            .text(ns::PLUS, "PropertyReleaseStatus")
            .map(plus_code),
        regions: regions(packet, image_size, label, w),
        licence: LicenceFields {
            usage_terms: packet.text(ns::XMP_RIGHTS, "UsageTerms"),
            web_statement: packet.text(ns::XMP_RIGHTS, "WebStatement"),
            licensors: struct_names(packet, ns::PLUS, "Licensor", "LicensorName"),
            license_end_date: packet.text(ns::PLUS, "LicenseEndDate"),
            license_start_date: packet.text(ns::PLUS, "LicenseStartDate"),
            license_id: packet.text(ns::PLUS, "LicenseID"),
            other_constraints: packet.text(ns::PLUS, "OtherConstraints"),
            copyright_owners: struct_names(
                packet,
                ns::PLUS,
                "CopyrightOwner",
                "CopyrightOwnerName",
            ),
        },
        warnings: Vec::new(),
    };
    Metadata { warnings, ..md }
}

/// `http://ns.useplus.org/ldf/vocab/MR-UMR` → `MR-UMR`.
fn plus_code(value: String) -> String {
    match value.split_once(PLUS_VOCAB) {
        Some((scheme, code)) if matches!(scheme, "http:" | "https:") && !code.is_empty() => {
            code.to_owned()
        }
        _ => value,
    }
}

/// One field of each struct in an array property, e.g. the licensor names.
fn struct_names(packet: &Packet, ns: &str, name: &str, field: &str) -> Vec<String> {
    packet.get(ns, name).map_or_else(Vec::new, |value| {
        value
            .members()
            .into_iter()
            .filter_map(|m| m.field_text(ns, field))
            .collect()
    })
}

fn capture_time(packet: &Packet, label: &str, warnings: &mut Vec<String>) -> Option<CaptureTime> {
    [
        (ns::EXIF, "exif:DateTimeOriginal"),
        (ns::PHOTOSHOP, "photoshop:DateCreated"),
        (ns::XMP, "xmp:CreateDate"),
    ]
    .into_iter()
    .find_map(|(namespace, qname)| {
        let name = qname.split_once(':').map_or(qname, |(_, n)| n);
        let raw = packet.text(namespace, name)?;
        let source = format!("{label} {qname}");
        stamp_or_warn(&raw, &source, warnings).map(|stamp| stamp.into_capture_time(&source))
    })
}

fn gps(packet: &Packet, label: &str, warnings: &mut Vec<String>) -> Option<Gps> {
    let latitude = packet.text(ns::EXIF, "GPSLatitude");
    let longitude = packet.text(ns::EXIF, "GPSLongitude");
    let (latitude, longitude) = match (latitude, longitude) {
        (None, None) => return None,
        (Some(latitude), Some(longitude)) => (latitude, longitude),
        _ => {
            warnings.push(format!(
                "{label} GPS has only one of latitude and longitude; ignored"
            ));
            return None;
        }
    };
    let Some(lat) = parse_xmp_coordinate(&latitude, ('N', 'S')) else {
        warnings.push(format!(
            "{label} exif:GPSLatitude {} is not a coordinate; GPS ignored",
            quote(&latitude)
        ));
        return None;
    };
    let Some(lon) = parse_xmp_coordinate(&longitude, ('E', 'W')) else {
        warnings.push(format!(
            "{label} exif:GPSLongitude {} is not a coordinate; GPS ignored",
            quote(&longitude)
        ));
        return None;
    };
    let altitude = packet.text(ns::EXIF, "GPSAltitude").and_then(|raw| {
        let value = parse_rational(&raw);
        if value.is_none() {
            warnings.push(format!(
                "{label} exif:GPSAltitude {} is not a number; ignored",
                quote(&raw)
            ));
        }
        value
    });
    let below = packet
        .text(ns::EXIF, "GPSAltitudeRef")
        .is_some_and(|r| r == "1" || r == "3");
    let altitude = altitude.map(|a| if below { -a.abs() } else { a });
    checked_gps(lat, lon, altitude, &format!("{label} GPS"), warnings)
}

/// XMP GPSCoordinate: `DDD,MM,SSk` or `DDD,MM.mmk` (k = N/S or E/W); a signed
/// decimal number without a letter is accepted too, as ExifTool does.
fn parse_xmp_coordinate(raw: &str, (positive, negative): (char, char)) -> Option<f64> {
    let text = raw.trim();
    let last = text.chars().last()?.to_ascii_uppercase();
    let (body, sign) = if last == positive {
        (&text[..text.len() - 1], 1.0)
    } else if last == negative {
        (&text[..text.len() - 1], -1.0)
    } else {
        return parse_number(text);
    };
    let parts: Vec<f64> = body
        .split(',')
        .map(|p| parse_number(p.trim()))
        .collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| *p < 0.0) {
        return None;
    }
    Some(
        sign * parts
            .iter()
            .zip([1.0, 60.0, 3600.0])
            .map(|(p, d)| p / d)
            .sum::<f64>(),
    )
}

/// A finite decimal number.
fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `n/d` or a decimal number.
fn parse_rational(text: &str) -> Option<f64> {
    match text.split_once('/') {
        Some((n, d)) => {
            let (n, d) = (parse_number(n)?, parse_number(d)?);
            (d != 0.0).then(|| n / d)
        }
        None => parse_number(text),
    }
}

// ---------------------------------------------------------------------------
// Regions.

/// How far (normalised) an area may stick out of the image before it counts
/// as out of range rather than as a region at the edge.
const EDGE_TOLERANCE: f64 = 0.5;

fn regions(
    packet: &Packet,
    image_size: Option<(u32, u32)>,
    label: &str,
    warnings: &mut Vec<String>,
) -> Vec<Region> {
    let mut regions = Vec::new();
    mwg_regions(packet, label, warnings, &mut regions);
    microsoft_regions(packet, label, warnings, &mut regions);
    iptc_regions(packet, image_size, label, warnings, &mut regions);
    if regions.len() > MAX_REGIONS {
        warnings.push(format!(
            "{label} has {} regions; only the first {MAX_REGIONS} are kept",
            regions.len()
        ));
        regions.truncate(MAX_REGIONS);
    }
    regions
}

/// Keeps a region that says something: where it is, or who it is.
fn push_region(regions: &mut Vec<Region>, region: Region) {
    if region.name.is_some() || region.area.is_some() {
        regions.push(region);
    }
}

/// `mwg-rs:Regions/mwg-rs:RegionList`: `stArea` x, y are the centre.
fn mwg_regions(
    packet: &Packet,
    label: &str,
    warnings: &mut Vec<String>,
    regions: &mut Vec<Region>,
) {
    let Some(info) = packet.get(ns::MWG_RS, "Regions") else {
        return;
    };
    let dims = info.field(ns::MWG_RS, "AppliedToDimensions").and_then(|d| {
        let w = d.field_number(ns::ST_DIM, "w")?;
        let h = d.field_number(ns::ST_DIM, "h")?;
        (w > 0.0 && h > 0.0).then_some((w, h))
    });
    let Some(list) = info.field(ns::MWG_RS, "RegionList") else {
        return;
    };
    for (index, region) in list.members().into_iter().enumerate() {
        let kind = match region
            .field_text(ns::MWG_RS, "Type")
            .map(|t| t.to_ascii_lowercase())
            .as_deref()
        {
            Some("face") => RegionKind::Face,
            Some("pet") => RegionKind::Pet,
            Some("focus") => RegionKind::Focus,
            Some("barcode") => RegionKind::Barcode,
            _ => RegionKind::Other,
        };
        let area = region.field(ns::MWG_RS, "Area").and_then(|area| {
            let get = |name| area.field_number(ns::ST_AREA, name);
            let (Some(mut cx), Some(mut cy)) = (get("x"), get("y")) else {
                return None;
            };
            let (Some(mut w), Some(mut h)) = (get("w"), get("h")) else {
                return None;
            }; // a point
            match area
                .field_text(ns::ST_AREA, "unit")
                .map(|u| u.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("normalized") => {}
                Some("pixel") if dims.is_some() => {
                    let (dw, dh) = dims.unwrap_or((1.0, 1.0));
                    (cx, w, cy, h) = (cx / dw, w / dw, cy / dh, h / dh);
                }
                Some(unit) => {
                    warnings.push(format!(
                        "{label} MWG region {} has area unit {}; area ignored",
                        index + 1,
                        quote(unit)
                    ));
                    return None;
                }
            }
            checked_rect(
                cx - w / 2.0,
                cy - h / 2.0,
                w,
                h,
                &format!("{label} MWG region {}", index + 1),
                warnings,
            )
        });
        let name = region.field_text(ns::MWG_RS, "Name");
        push_region(
            regions,
            Region {
                kind,
                name,
                area,
                source: RegionSource::Mwg,
            },
        );
    }
}

/// `MP:RegionInfo/MPRI:Regions`: `MPReg:Rectangle` is "x, y, w, h", top-left.
fn microsoft_regions(
    packet: &Packet,
    label: &str,
    warnings: &mut Vec<String>,
    regions: &mut Vec<Region>,
) {
    let Some(list) = packet
        .get(ns::MP, "RegionInfo")
        .and_then(|info| info.field(ns::MPRI, "Regions"))
    else {
        return;
    };
    for (index, region) in list.members().into_iter().enumerate() {
        let what = format!("{label} Microsoft region {}", index + 1);
        let area = region.field_text(ns::MPREG, "Rectangle").and_then(|raw| {
            let parts: Option<Vec<f64>> = raw.split(',').map(parse_number).collect();
            match parts.as_deref() {
                Some(&[x, y, w, h]) => checked_rect(x, y, w, h, &what, warnings),
                _ => {
                    warnings.push(format!(
                        "{what} rectangle {} is not \"x, y, w, h\"; area ignored",
                        quote(&raw)
                    ));
                    None
                }
            }
        });
        let name = region.field_text(ns::MPREG, "PersonDisplayName");
        // Windows people tags mark people's faces.
        push_region(
            regions,
            Region {
                kind: RegionKind::Face,
                name,
                area,
                source: RegionSource::Microsoft,
            },
        );
    }
}

/// `Iptc4xmpExt:ImageRegion`: rectangles, circles and polygons, in relative
/// or pixel units.
fn iptc_regions(
    packet: &Packet,
    image_size: Option<(u32, u32)>,
    label: &str,
    warnings: &mut Vec<String>,
    regions: &mut Vec<Region>,
) {
    let Some(list) = packet.get(ns::IPTC_EXT, "ImageRegion") else {
        return;
    };
    let size = image_size.map(|(w, h)| (f64::from(w), f64::from(h)));
    for (index, region) in list.members().into_iter().enumerate() {
        let what = format!("{label} IPTC image region {}", index + 1);
        let area = region
            .field(ns::IPTC_EXT, "RegionBoundary")
            .and_then(|b| iptc_area(b, size, &what, warnings));
        // The person's name when the region shows one, else the region's name.
        let name = region
            .field(ns::IPTC_EXT, "PersonInImage")
            .and_then(Value::text)
            .or_else(|| region.field_text(ns::IPTC_EXT, "Name"));
        push_region(
            regions,
            Region {
                kind: iptc_kind(region),
                name,
                area,
                source: RegionSource::Iptc,
            },
        );
    }
}

/// From the `rCtype` entities: IPTC's `human` is a person (our faces are
/// exported as human regions), `animal` a pet.
fn iptc_kind(region: &Value) -> RegionKind {
    let Some(types) = region.field(ns::IPTC_EXT, "rCtype") else {
        return RegionKind::Other;
    };
    let mut codes = types.members().into_iter().flat_map(|entity| {
        let ids = entity
            .field(ns::XMP, "Identifier")
            .map(Value::texts)
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| {
                id.split_once(IPTC_REGION_TYPES)
                    .map(|(_, code)| code.to_owned())
            })
            .collect::<Vec<_>>()
    });
    codes
        .find_map(|code| match code.as_str() {
            "human" => Some(RegionKind::Face),
            "animal" => Some(RegionKind::Pet),
            _ => None,
        })
        .unwrap_or(RegionKind::Other)
}

fn iptc_area(
    boundary: &Value,
    size: Option<(f64, f64)>,
    what: &str,
    warnings: &mut Vec<String>,
) -> Option<NormalizedRect> {
    let number = |v: &Value, name| v.field_number(ns::IPTC_EXT, name);
    let unit = boundary
        .field_text(ns::IPTC_EXT, "rbUnit")
        .map(|u| u.to_ascii_lowercase());
    // Divisors that take the boundary's units to relative ones.
    let (sx, sy) = match unit.as_deref() {
        Some("relative") => (1.0, 1.0),
        Some("pixel") => size?, // unknown image size: no area
        other => {
            let unit = other.unwrap_or("(none)");
            warnings.push(format!(
                "{what} has boundary unit {}; area ignored",
                quote(unit)
            ));
            return None;
        }
    };
    let shape = boundary
        .field_text(ns::IPTC_EXT, "rbShape")
        .map(|s| s.to_ascii_lowercase());
    let (x, y, w, h) = match shape.as_deref() {
        Some("rectangle") => (
            number(boundary, "rbX")? / sx,
            number(boundary, "rbY")? / sy,
            number(boundary, "rbW")? / sx,
            number(boundary, "rbH")? / sy,
        ),
        Some("circle") => {
            // The radius is measured along x; its height needs the aspect ratio.
            let (cx, cy, r) = (
                number(boundary, "rbX")?,
                number(boundary, "rbY")?,
                number(boundary, "rbRx")?,
            );
            let (width, height) = size?;
            let (rx, ry) = if unit.as_deref() == Some("relative") {
                (r, r * width / height)
            } else {
                (r / width, r / height)
            };
            (cx / sx - rx, cy / sy - ry, 2.0 * rx, 2.0 * ry)
        }
        Some("polygon") => {
            let vertices: Vec<(f64, f64)> = boundary
                .field(ns::IPTC_EXT, "rbVertices")?
                .members()
                .into_iter()
                .filter_map(|v| Some((number(v, "rbX")? / sx, number(v, "rbY")? / sy)))
                .collect();
            if vertices.len() < 3 {
                warnings.push(format!(
                    "{what} polygon has {} usable vertices; area ignored",
                    vertices.len()
                ));
                return None;
            }
            let (x0, x1) = vertices
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
                    (lo.min(x), hi.max(x))
                });
            let (y0, y1) = vertices
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| {
                    (lo.min(y), hi.max(y))
                });
            (x0, y0, x1 - x0, y1 - y0)
        }
        other => {
            warnings.push(format!(
                "{what} has boundary shape {}; area ignored",
                quote(other.unwrap_or("(none)"))
            ));
            return None;
        }
    };
    checked_rect(x, y, w, h, what, warnings)
}

/// A normalised top-left rectangle, clipped to the image; `None` (with a
/// warning) when it is empty or lies well outside the image, as values in
/// pixels mislabelled as normalised do.
fn checked_rect(
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    what: &str,
    warnings: &mut Vec<String>,
) -> Option<NormalizedRect> {
    let finite = [x, y, w, h].iter().all(|v| v.is_finite());
    let lo = -EDGE_TOLERANCE;
    let hi = 1.0 + EDGE_TOLERANCE;
    if !finite || w <= 0.0 || h <= 0.0 || x < lo || y < lo || x + w > hi || y + h > hi {
        warnings.push(format!(
            "{what} area (x {x}, y {y}, w {w}, h {h}) is not inside the image; area ignored"
        ));
        return None;
    }
    let Some((x, w)) = clip(x, w) else {
        warnings.push(format!("{what} area lies outside the image; area ignored"));
        return None;
    };
    let Some((y, h)) = clip(y, h) else {
        warnings.push(format!("{what} area lies outside the image; area ignored"));
        return None;
    };
    Some(NormalizedRect { x, y, w, h })
}

/// Clips a span (start, length) to 0..1; the values are kept exactly when
/// already inside. `None` when nothing is left.
fn clip(start: f64, length: f64) -> Option<(f64, f64)> {
    if start >= 0.0 && start + length <= 1.0 {
        return Some((start, length));
    }
    let (lo, hi) = (start.max(0.0), (start + length).min(1.0));
    (hi > lo).then_some((lo, hi - lo))
}

#[cfg(test)]
mod tests {
    use super::{ArrayKind, Packet, Value, extract, ns};
    use crate::pipeline::metadata::{
        Metadata, MetadataError, NormalizedRect, RegionKind, RegionSource,
    };

    const RDF_OPEN: &str = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">"#;
    const RDF_CLOSE: &str = "</rdf:RDF></x:xmpmeta>";
    const NAMESPACES: &str = concat!(
        r#" xmlns:dc="http://purl.org/dc/elements/1.1/""#,
        r#" xmlns:xmp="http://ns.adobe.com/xap/1.0/""#,
        r#" xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/""#,
        r#" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/""#,
        r#" xmlns:exif="http://ns.adobe.com/exif/1.0/""#,
        r#" xmlns:tiff="http://ns.adobe.com/tiff/1.0/""#,
        r#" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/""#,
        r#" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/""#,
        r#" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/""#,
        r#" xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#""#,
        r#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#""#,
        r#" xmlns:MP="http://ns.microsoft.com/photo/1.2/""#,
        r#" xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#""#,
        r#" xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#""#,
    );

    /// A packet with one rdf:Description holding `attributes` and `body`.
    fn packet(attributes: &str, body: &str) -> String {
        format!(
            r#"{RDF_OPEN}<rdf:Description rdf:about=""{NAMESPACES} {attributes}>{body}</rdf:Description>{RDF_CLOSE}"#
        )
    }

    fn parse(xml: &str) -> Packet {
        let (packet, warnings) = Packet::parse(xml.as_bytes()).expect("parses");
        assert_eq!(warnings, Vec::<String>::new());
        packet
    }

    fn md(xml: &str) -> Metadata {
        extract(&parse(xml), None, "XMP")
    }

    fn md_sized(xml: &str, size: (u32, u32)) -> Metadata {
        extract(&parse(xml), Some(size), "XMP")
    }

    fn close(a: NormalizedRect, b: (f64, f64, f64, f64)) -> bool {
        [a.x - b.0, a.y - b.1, a.w - b.2, a.h - b.3]
            .iter()
            .all(|d| d.abs() < 1e-9)
    }

    #[test]
    fn simple_properties_as_attributes_and_as_elements() {
        let as_attributes = md(&packet(
            r#"photoshop:Credit="Attr credit" tiff:Make="NIKON" tiff:Orientation="8""#,
            "",
        ));
        assert_eq!(as_attributes.credit.as_deref(), Some("Attr credit"));
        assert_eq!(as_attributes.camera_make.as_deref(), Some("NIKON"));
        assert_eq!(as_attributes.orientation, Some(8));

        let as_elements = md(&packet(
            "",
            "<photoshop:Credit> Elem credit </photoshop:Credit><tiff:Model>D750</tiff:Model>",
        ));
        assert_eq!(as_elements.credit.as_deref(), Some("Elem credit"));
        assert_eq!(as_elements.camera_model.as_deref(), Some("D750"));
    }

    #[test]
    fn bag_seq_and_lang_alt() {
        let m = md(&packet(
            "",
            r#"<dc:subject><rdf:Bag><rdf:li>one</rdf:li><rdf:li>two</rdf:li><rdf:li> </rdf:li></rdf:Bag></dc:subject>
               <dc:creator><rdf:Seq><rdf:li>Ann</rdf:li><rdf:li>Bob</rdf:li></rdf:Seq></dc:creator>
               <dc:title><rdf:Alt><rdf:li xml:lang="de">Titel</rdf:li><rdf:li xml:lang="x-default">Title</rdf:li></rdf:Alt></dc:title>
               <dc:description><rdf:Alt><rdf:li xml:lang="fr">Légende</rdf:li><rdf:li xml:lang="en">Caption</rdf:li></rdf:Alt></dc:description>
               <dc:rights><rdf:Alt><rdf:li>No language at all</rdf:li></rdf:Alt></dc:rights>
               <xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="X-DEFAULT">Terms</rdf:li></rdf:Alt></xmpRights:UsageTerms>"#,
        ));
        assert_eq!(m.keywords, ["one", "two"]);
        assert_eq!(m.creator, ["Ann", "Bob"]);
        assert_eq!(m.title.as_deref(), Some("Title"), "x-default wins");
        assert_eq!(m.caption.as_deref(), Some("Légende"), "else the first item");
        assert_eq!(m.copyright.as_deref(), Some("No language at all"));
        assert_eq!(m.licence.usage_terms.as_deref(), Some("Terms"));
    }

    #[test]
    fn struct_forms_parse_type_resource_nested_description_and_attributes() {
        let m = md(&packet(
            "",
            r#"<plus:Licensor><rdf:Seq>
                 <rdf:li rdf:parseType="Resource"><plus:LicensorName>Resource form</plus:LicensorName></rdf:li>
                 <rdf:li><rdf:Description><plus:LicensorName>Description form</plus:LicensorName></rdf:Description></rdf:li>
                 <rdf:li><rdf:Description plus:LicensorName="Description attribute form"/></rdf:li>
                 <rdf:li plus:LicensorName="Attribute form"/>
               </rdf:Seq></plus:Licensor>
               <plus:CopyrightOwner rdf:parseType="Resource"><plus:CopyrightOwnerName>Lone struct</plus:CopyrightOwnerName></plus:CopyrightOwner>"#,
        ));
        assert_eq!(
            m.licence.licensors,
            [
                "Resource form",
                "Description form",
                "Description attribute form",
                "Attribute form"
            ]
        );
        assert_eq!(m.licence.copyright_owners, ["Lone struct"]);
    }

    #[test]
    fn several_descriptions_merge_and_the_first_value_wins() {
        let xml = format!(
            r#"{RDF_OPEN}
            <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>first</rdf:li></rdf:Bag></dc:subject></rdf:Description>
            <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:Credit="second block">
              <dc:subject><rdf:Bag><rdf:li>duplicate</rdf:li></rdf:Bag></dc:subject></rdf:Description>
            {RDF_CLOSE}"#
        );
        let m = md(&xml);
        assert_eq!(m.keywords, ["first"]);
        assert_eq!(m.credit.as_deref(), Some("second block"));
    }

    #[test]
    fn properties_are_matched_by_namespace_uri_not_prefix() {
        let xml = format!(
            r#"{RDF_OPEN}<rdf:Description rdf:about="" xmlns:d="http://purl.org/dc/elements/1.1/" xmlns:dc="http://example.com/not-dublin-core/">
               <dc:subject><rdf:Bag><rdf:li>wrong namespace</rdf:li></rdf:Bag></dc:subject>
               <d:subject><rdf:Bag><rdf:li>right namespace</rdf:li></rdf:Bag></d:subject>
            </rdf:Description>{RDF_CLOSE}"#
        );
        assert_eq!(md(&xml).keywords, ["right namespace"]);
        // The default namespace works too.
        let xml = format!(
            r#"{RDF_OPEN}<rdf:Description rdf:about=""><subject xmlns="http://purl.org/dc/elements/1.1/"><rdf:Bag><rdf:li>default ns</rdf:li></rdf:Bag></subject></rdf:Description>{RDF_CLOSE}"#
        );
        assert_eq!(md(&xml).keywords, ["default ns"]);
    }

    #[test]
    fn qualified_values_and_resources() {
        let packet = parse(&packet(
            "",
            r#"<dc:creator><rdf:Seq><rdf:li><rdf:Description><rdf:value>Qualified Ann</rdf:value><xmp:Role>photographer</xmp:Role></rdf:Description></rdf:li></rdf:Seq></dc:creator>
               <plus:ModelReleaseStatus rdf:resource="http://ns.useplus.org/ldf/vocab/MR-LMR"/>"#,
        ));
        let m = extract(&packet, None, "XMP");
        assert_eq!(m.creator, ["Qualified Ann"]);
        assert_eq!(m.model_release_status.as_deref(), Some("MR-LMR"));
        assert!(matches!(
            packet.get(ns::DC, "creator"),
            Some(Value::Array {
                kind: ArrayKind::Seq,
                ..
            })
        ));
    }

    #[test]
    fn consent_fields_and_plus_codes() {
        let m = md(&packet(
            r#"plus:MinorModelAgeDisclosure="AG-A25" plus:PropertyReleaseStatus="https://ns.useplus.org/ldf/vocab/PR-NON""#,
            r#"<plus:ModelReleaseStatus>http://ns.useplus.org/ldf/vocab/MR-UMR</plus:ModelReleaseStatus>
               <plus:ModelReleaseID><rdf:Bag><rdf:li>MR-2024-001</rdf:li><rdf:li>MR-2024-002</rdf:li></rdf:Bag></plus:ModelReleaseID>
               <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Ann</rdf:li><rdf:li>Bob</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
               <plus:LicenseEndDate>2030-12-31</plus:LicenseEndDate><plus:LicenseStartDate>2024-01-01</plus:LicenseStartDate>
               <plus:LicenseID>L-7</plus:LicenseID><xmpRights:WebStatement>https://example.com/terms</xmpRights:WebStatement>
               <plus:OtherConstraints><rdf:Alt><rdf:li xml:lang="x-default">Consent withdrawn</rdf:li></rdf:Alt></plus:OtherConstraints>"#,
        ));
        assert_eq!(m.model_release_status.as_deref(), Some("MR-UMR"));
        assert_eq!(m.model_release_ids, ["MR-2024-001", "MR-2024-002"]);
        assert_eq!(m.minor_model_age.as_deref(), Some("AG-A25"));
        assert_eq!(m.property_release_status.as_deref(), Some("PR-NON"));
        assert_eq!(m.person_in_image, ["Ann", "Bob"]);
        assert_eq!(m.licence.license_end_date.as_deref(), Some("2030-12-31"));
        assert_eq!(m.licence.license_start_date.as_deref(), Some("2024-01-01"));
        assert_eq!(m.licence.license_id.as_deref(), Some("L-7"));
        assert_eq!(
            m.licence.web_statement.as_deref(),
            Some("https://example.com/terms")
        );
        assert_eq!(
            m.licence.other_constraints.as_deref(),
            Some("Consent withdrawn")
        );
    }

    #[test]
    fn packet_wrapper_bom_nul_padding_and_stale_tail() {
        let body = packet(r#"photoshop:Credit="wrapped""#, "");
        let wrapped = format!(
            "\u{FEFF}<?xpacket begin=\"\u{FEFF}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n{body}\n{}<?xpacket end=\"w\"?>  \n\0\0\0",
            " ".repeat(2048)
        );
        assert_eq!(md(&wrapped).credit.as_deref(), Some("wrapped"));
        // A longer, older packet's tail after the end marker (seen in the wild).
        let stale =
            format!("{wrapped}li>\n</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end=\"r\"?>");
        assert_eq!(md(&stale).credit.as_deref(), Some("wrapped"));
        // The namespace header of a JPEG APP1 segment left on by mistake.
        let app1 = format!("http://ns.adobe.com/xap/1.0/\0{body}");
        assert_eq!(md(&app1).credit.as_deref(), Some("wrapped"));
    }

    #[test]
    fn utf16_and_utf32_packets() {
        let text = packet(r#"photoshop:Credit="Zoë 東京""#, "");
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let le_bom: Vec<u8> = [0xFF, 0xFE].into_iter().chain(le.iter().copied()).collect();
        let be32: Vec<u8> = text
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        for bytes in [be, le, le_bom, be32] {
            let (packet, warnings) = Packet::parse(&bytes).expect("parses");
            assert!(warnings.is_empty());
            assert_eq!(
                extract(&packet, None, "XMP").credit.as_deref(),
                Some("Zoë 東京")
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_with_a_warning() {
        let mut bytes = packet(r#"photoshop:Credit="Zo?""#, "").into_bytes();
        let at = bytes.iter().position(|&b| b == b'?').unwrap();
        bytes[at] = 0xEB;
        let (packet, warnings) = Packet::parse(&bytes).expect("parses");
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            extract(&packet, None, "XMP").credit.as_deref(),
            Some("Zo\u{FFFD}")
        );
    }

    #[test]
    fn unusable_packets_are_errors() {
        assert_eq!(Packet::parse(b""), Err(MetadataError::Empty));
        assert_eq!(Packet::parse(b"  \0\0 "), Err(MetadataError::Empty));
        assert!(matches!(
            Packet::parse(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"),
            Err(MetadataError::Xml(_))
        ));
        assert!(matches!(
            Packet::parse(b"<a><b></a>"),
            Err(MetadataError::Xml(_))
        ));
        assert_eq!(
            Packet::parse(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"),
            Err(MetadataError::NoRdf)
        );
        assert!(matches!(
            Packet::parse(b"not xml"),
            Err(MetadataError::Xml(_))
        ));
        // Entity expansion is refused outright.
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert!(matches!(Packet::parse(laughs), Err(MetadataError::Xml(_))));
    }

    #[test]
    fn packets_that_would_make_the_parser_crawl_are_refused() {
        // Each element declares one more namespace: quadratic per element, cubic in all.
        let nested: String = (0..5000)
            .map(|i| format!("<a xmlns:p{i}='urn:{i}'>"))
            .collect();
        let bomb = format!(
            "<x:xmpmeta xmlns:x='adobe:ns:meta/'>{nested}{}</x:xmpmeta>",
            "</a>".repeat(5000)
        );
        let started = std::time::Instant::now();
        assert_eq!(
            Packet::parse(bomb.as_bytes()),
            Err(MetadataError::TooComplex)
        );
        let attributes: String = (0..20_000).map(|i| format!(" p:a{i}='v'")).collect();
        let wide = packet(&format!(r#"xmlns:p="urn:p"{attributes}"#), "");
        assert_eq!(
            Packet::parse(wide.as_bytes()),
            Err(MetadataError::TooComplex)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Real packets are far from the limit, however large.
        let keywords: String = (0..50_000)
            .map(|i| format!("<rdf:li>keyword {i}</rdf:li>"))
            .collect();
        let big = packet(
            "",
            &format!("<dc:subject><rdf:Bag>{keywords}</rdf:Bag></dc:subject>"),
        );
        assert_eq!(md(&big).keywords.len(), 50_000);
        assert!(super::superlinear_parse_cost(&packet("", IPTC_REGIONS)) < 100_000);
    }

    #[test]
    fn deep_nesting_is_cut_with_a_warning() {
        let depth = 200;
        let open = "<rdf:li rdf:parseType=\"Resource\"><dc:x><rdf:Bag>".repeat(depth);
        let close = "</rdf:Bag></dc:x></rdf:li>".repeat(depth);
        let xml = packet(
            "",
            &format!(
                "<dc:subject><rdf:Bag>{open}{close}<rdf:li>kw</rdf:li></rdf:Bag></dc:subject>"
            ),
        );
        let (packet, warnings) = Packet::parse(xml.as_bytes()).expect("parses");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(extract(&packet, None, "XMP").keywords, ["kw"]);
    }

    #[test]
    fn capture_time_order_and_forms() {
        let all = md(&packet(
            r#"exif:DateTimeOriginal="2019-08-21T11:21:36.245+02:00" photoshop:DateCreated="2019-08-20" xmp:CreateDate="2019-08-19T10:00:00Z""#,
            "",
        ));
        let time = all.capture_time.unwrap();
        assert_eq!(
            (
                time.local.as_str(),
                time.offset.as_deref(),
                time.source.as_str()
            ),
            (
                "2019-08-21T11:21:36.245",
                Some("+02:00"),
                "XMP exif:DateTimeOriginal"
            )
        );

        let date_only = md(&packet(
            r#"photoshop:DateCreated="1988-12-01" xmp:CreateDate="2022-07-31T18:53:44-05:00""#,
            "",
        ));
        let time = date_only.capture_time.unwrap();
        assert_eq!(
            (time.local.as_str(), time.source.as_str()),
            (
                "1988-12-01T00:00:00",
                "XMP photoshop:DateCreated (date only)"
            )
        );

        let create = md(&packet(
            r#"photoshop:DateCreated="1988" xmp:CreateDate="2002-02-02T02:02Z""#,
            "",
        ));
        let time = create.capture_time.unwrap();
        assert_eq!(
            (
                time.local.as_str(),
                time.offset.as_deref(),
                time.source.as_str()
            ),
            ("2002-02-02T02:02:00", Some("+00:00"), "XMP xmp:CreateDate")
        );
        assert_eq!(
            create.warnings,
            ["XMP photoshop:DateCreated \"1988\" has no day; not used as capture time"]
        );

        let invalid = md(&packet(r#"exif:DateTimeOriginal="yesterday""#, ""));
        assert_eq!(invalid.capture_time, None);
        assert_eq!(invalid.warnings.len(), 1);
    }

    #[test]
    fn gps_coordinates_in_xmp_form() {
        let m = md(&packet(
            r#"exif:GPSLatitude="52,1.2N" exif:GPSLongitude="12,1.2W" exif:GPSAltitude="1234/10" exif:GPSAltitudeRef="1""#,
            "",
        ));
        let gps = m.gps.unwrap();
        assert!(
            (gps.latitude - 52.02).abs() < 1e-9 && (gps.longitude - -12.02).abs() < 1e-9,
            "{gps:?}"
        );
        assert_eq!(gps.altitude_m, Some(-123.4));

        let m = md(&packet(
            r#"exif:GPSLatitude="33,51,35.64S" exif:GPSLongitude="151,12,30E""#,
            "",
        ));
        let gps = m.gps.unwrap();
        assert!(
            (gps.latitude - -(33.0 + 51.0 / 60.0 + 35.64 / 3600.0)).abs() < 1e-9,
            "{gps:?}"
        );
        assert!(
            (gps.longitude - (151.0 + 12.5 / 60.0)).abs() < 1e-9,
            "{gps:?}"
        );
        assert_eq!(gps.altitude_m, None);

        let m = md(&packet(
            r#"exif:GPSLatitude="91,0N" exif:GPSLongitude="12,0E""#,
            "",
        ));
        assert_eq!((m.gps, m.warnings.len()), (None, 1));
        let m = md(&packet(
            r#"exif:GPSLatitude="52,1.2E" exif:GPSLongitude="12,0E""#,
            "",
        ));
        assert_eq!((m.gps, m.warnings.len()), (None, 1), "E is no latitude");
    }

    #[test]
    fn mwg_regions_centre_to_top_left() {
        let m = md(&packet(
            "",
            r#"<mwg-rs:Regions rdf:parseType="Resource">
                 <mwg-rs:AppliedToDimensions stDim:w="4000" stDim:h="3000" stDim:unit="pixel"/>
                 <mwg-rs:RegionList><rdf:Bag>
                   <rdf:li><rdf:Description mwg-rs:Name="Ann" mwg-rs:Type="Face">
                     <mwg-rs:Area stArea:x="0.5" stArea:y="0.4" stArea:w="0.2" stArea:h="0.1" stArea:unit="normalized"/>
                   </rdf:Description></rdf:li>
                   <rdf:li rdf:parseType="Resource">
                     <mwg-rs:Type>Pet</mwg-rs:Type>
                     <mwg-rs:Area rdf:parseType="Resource"><stArea:x>0.05</stArea:x><stArea:y>0.5</stArea:y><stArea:w>0.2</stArea:w><stArea:h>0.2</stArea:h></mwg-rs:Area>
                   </rdf:li>
                   <rdf:li rdf:parseType="Resource"><mwg-rs:Type>BarCode</mwg-rs:Type><mwg-rs:Name>EAN</mwg-rs:Name></rdf:li>
                   <rdf:li rdf:parseType="Resource"><mwg-rs:Type>Focus</mwg-rs:Type>
                     <mwg-rs:Area stArea:x="2000" stArea:y="1500" stArea:w="400" stArea:h="300" stArea:unit="pixel"/></rdf:li>
                   <rdf:li rdf:parseType="Resource"><mwg-rs:Type>Face</mwg-rs:Type></rdf:li>
                 </rdf:Bag></mwg-rs:RegionList>
               </mwg-rs:Regions>"#,
        ));
        assert_eq!(m.warnings, Vec::<String>::new());
        assert_eq!(
            m.regions.len(),
            4,
            "the empty fifth region is dropped: {:?}",
            m.regions
        );
        let [ann, pet, barcode, focus] = &m.regions[..] else {
            unreachable!()
        };
        assert_eq!(
            (ann.kind, ann.name.as_deref(), ann.source),
            (RegionKind::Face, Some("Ann"), RegionSource::Mwg)
        );
        assert!(close(ann.area.unwrap(), (0.4, 0.35, 0.2, 0.1)), "{ann:?}");
        // Centre 0.05 with width 0.2 sticks out on the left: clipped to the image.
        assert_eq!(pet.kind, RegionKind::Pet);
        assert!(close(pet.area.unwrap(), (0.0, 0.4, 0.15, 0.2)), "{pet:?}");
        assert_eq!(
            (barcode.kind, barcode.name.as_deref(), barcode.area),
            (RegionKind::Barcode, Some("EAN"), None)
        );
        assert_eq!(focus.kind, RegionKind::Focus);
        assert!(
            close(focus.area.unwrap(), (0.45, 0.45, 0.1, 0.1)),
            "pixel units via AppliedToDimensions: {focus:?}"
        );
    }

    #[test]
    fn mwg_area_out_of_range_is_dropped_with_a_warning() {
        let m = md(&packet(
            "",
            r#"<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag><rdf:li rdf:parseType="Resource">
                 <mwg-rs:Area rdf:parseType="Resource"><stArea:h>8</stArea:h><stArea:w>8</stArea:w><stArea:x>0</stArea:x><stArea:y>0</stArea:y></mwg-rs:Area>
                 <mwg-rs:Name>Region 1</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>
               </rdf:li></rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>"#,
        ));
        assert_eq!(m.regions.len(), 1);
        assert_eq!(
            (m.regions[0].name.as_deref(), m.regions[0].area),
            (Some("Region 1"), None)
        );
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].starts_with("XMP MWG region 1 area"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn microsoft_regions_are_top_left() {
        let m = md(&packet(
            "",
            r#"<MP:RegionInfo><rdf:Description><MPRI:Regions><rdf:Bag>
                 <rdf:li><rdf:Description><MPReg:Rectangle>0.403125, 0.330598, 0.192188, 0.288394</MPReg:Rectangle><MPReg:PersonDisplayName>Bill Murray</MPReg:PersonDisplayName></rdf:Description></rdf:li>
                 <rdf:li MPReg:PersonDisplayName="Whole image tag"/>
                 <rdf:li><rdf:Description MPReg:Rectangle="0.1, 0.2, bad" MPReg:PersonDisplayName="Broken"/></rdf:li>
               </rdf:Bag></MPRI:Regions></rdf:Description></MP:RegionInfo>"#,
        ));
        assert_eq!(m.regions.len(), 3);
        let bill = &m.regions[0];
        assert_eq!(
            (bill.kind, bill.name.as_deref(), bill.source),
            (
                RegionKind::Face,
                Some("Bill Murray"),
                RegionSource::Microsoft
            )
        );
        assert!(close(
            bill.area.unwrap(),
            (0.403125, 0.330598, 0.192188, 0.288394)
        ));
        assert_eq!(
            (m.regions[1].name.as_deref(), m.regions[1].area),
            (Some("Whole image tag"), None)
        );
        assert_eq!(m.regions[2].area, None);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    }

    const IPTC_REGIONS: &str = r#"<Iptc4xmpExt:ImageRegion><rdf:Bag>
        <rdf:li rdf:parseType="Resource">
          <Iptc4xmpExt:Name><rdf:Alt><rdf:li xml:lang="x-default">Listener 1</rdf:li></rdf:Alt></Iptc4xmpExt:Name>
          <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Ann</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
          <Iptc4xmpExt:RegionBoundary rdf:parseType="Resource"><Iptc4xmpExt:rbShape>rectangle</Iptc4xmpExt:rbShape><Iptc4xmpExt:rbUnit>relative</Iptc4xmpExt:rbUnit>
            <Iptc4xmpExt:rbX>0.31</Iptc4xmpExt:rbX><Iptc4xmpExt:rbY>0.18</Iptc4xmpExt:rbY><Iptc4xmpExt:rbW>0.127</Iptc4xmpExt:rbW><Iptc4xmpExt:rbH>0.385</Iptc4xmpExt:rbH></Iptc4xmpExt:RegionBoundary>
          <Iptc4xmpExt:rCtype><rdf:Bag><rdf:li rdf:parseType="Resource"><xmp:Identifier><rdf:Bag><rdf:li>http://cv.iptc.org/newscodes/imageregiontype/human</rdf:li></rdf:Bag></xmp:Identifier></rdf:li></rdf:Bag></Iptc4xmpExt:rCtype>
        </rdf:li>
        <rdf:li rdf:parseType="Resource">
          <Iptc4xmpExt:Name><rdf:Alt><rdf:li xml:lang="x-default">Listener 2</rdf:li></rdf:Alt></Iptc4xmpExt:Name>
          <Iptc4xmpExt:RegionBoundary Iptc4xmpExt:rbShape="circle" Iptc4xmpExt:rbUnit="relative" Iptc4xmpExt:rbX="0.59" Iptc4xmpExt:rbY="0.426" Iptc4xmpExt:rbRx="0.068"/>
        </rdf:li>
        <rdf:li rdf:parseType="Resource">
          <Iptc4xmpExt:Name><rdf:Alt><rdf:li xml:lang="x-default">Speaker 1</rdf:li></rdf:Alt></Iptc4xmpExt:Name>
          <Iptc4xmpExt:RegionBoundary rdf:parseType="Resource"><Iptc4xmpExt:rbShape>polygon</Iptc4xmpExt:rbShape><Iptc4xmpExt:rbUnit>relative</Iptc4xmpExt:rbUnit>
            <Iptc4xmpExt:rbVertices><rdf:Seq>
              <rdf:li Iptc4xmpExt:rbX="0.05" Iptc4xmpExt:rbY="0.713"/><rdf:li Iptc4xmpExt:rbX="0.148" Iptc4xmpExt:rbY="0.041"/><rdf:li Iptc4xmpExt:rbX="0.375" Iptc4xmpExt:rbY="0.863"/>
            </rdf:Seq></Iptc4xmpExt:rbVertices></Iptc4xmpExt:RegionBoundary>
          <Iptc4xmpExt:rCtype><rdf:Bag><rdf:li rdf:parseType="Resource"><xmp:Identifier><rdf:Bag><rdf:li>https://cv.iptc.org/newscodes/imageregiontype/animal</rdf:li></rdf:Bag></xmp:Identifier></rdf:li></rdf:Bag></Iptc4xmpExt:rCtype>
        </rdf:li>
        <rdf:li rdf:parseType="Resource">
          <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Pixel Pete</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
          <Iptc4xmpExt:RegionBoundary Iptc4xmpExt:rbShape="rectangle" Iptc4xmpExt:rbUnit="pixel" Iptc4xmpExt:rbX="100" Iptc4xmpExt:rbY="50" Iptc4xmpExt:rbW="200" Iptc4xmpExt:rbH="100"/>
        </rdf:li>
      </rdf:Bag></Iptc4xmpExt:ImageRegion>"#;

    #[test]
    fn iptc_regions_without_image_size() {
        let m = md(&packet("", IPTC_REGIONS));
        assert_eq!(m.warnings, Vec::<String>::new());
        let [ann, listener, speaker, pete] = &m.regions[..] else {
            panic!("{:?}", m.regions)
        };
        assert_eq!(
            (ann.kind, ann.name.as_deref(), ann.source),
            (RegionKind::Face, Some("Ann"), RegionSource::Iptc),
            "PersonInImage names the region"
        );
        assert!(close(ann.area.unwrap(), (0.31, 0.18, 0.127, 0.385)));
        assert_eq!(
            (listener.kind, listener.name.as_deref(), listener.area),
            (RegionKind::Other, Some("Listener 2"), None),
            "a circle needs the aspect ratio"
        );
        assert_eq!(
            (speaker.kind, speaker.name.as_deref()),
            (RegionKind::Pet, Some("Speaker 1"))
        );
        assert!(
            close(speaker.area.unwrap(), (0.05, 0.041, 0.325, 0.822)),
            "polygon bounding box: {speaker:?}"
        );
        assert_eq!(
            (pete.name.as_deref(), pete.area),
            (Some("Pixel Pete"), None),
            "pixels need the image size"
        );
    }

    #[test]
    fn iptc_regions_with_image_size() {
        let m = md_sized(&packet("", IPTC_REGIONS), (1000, 500));
        let [_, listener, _, pete] = &m.regions[..] else {
            panic!("{:?}", m.regions)
        };
        // rbRx is relative to the width: 68 px, i.e. 0.136 of the height.
        assert!(
            close(listener.area.unwrap(), (0.522, 0.29, 0.136, 0.272)),
            "{listener:?}"
        );
        assert!(close(pete.area.unwrap(), (0.1, 0.1, 0.2, 0.2)), "{pete:?}");
    }
}
