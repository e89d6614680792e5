//! The access / portability package (GDPR Art. 15 and Art. 20): one zip file
//! for the data subject.
//!
//! ```text
//! README.txt                 plain-language explanation (what is where, whom to ask)
//! subject.json               PackageDocument, pretty-printed; schema: SCHEMA
//! photos/<file name>         the original photo files
//! xmp/<file name>.xmp        XMP sidecars (see crate::export::xmp)
//! documents/<file name>      signed consent documents
//! ```
//!
//! The caller gathers the data ([`PackageDocument`]) and the bytes of every
//! file ([`PackageFile`]); [`write_package`] checks that the two agree (every
//! path the document names is among the files, and every file is named by
//! the document), that every path is a plain file name in one of the three
//! folders, and that the document fits its own schema, **before** it writes
//! anything: a refused input leaves `out` untouched.
//!
//! Entries are stored uncompressed (photos and PDFs do not compress, and the
//! crate's `zip` has no compressor built in), and every entry carries the
//! package's `generated_at` time, so the same input gives the same bytes.
//!
//! Face templates are not part of this format (`templates_included` is
//! always false): they are biometric data (Art. 9), only meaningful to the
//! engine that made them, and the design (`shared/design/gdpr.md`, Art. 20)
//! leaves them out by default. Only faces a person confirmed as the data
//! subject belong in the package: an unreviewed suggestion may be someone
//! else, and handing that photo out would disclose another person's data.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Seek, Write};

use serde::{Deserialize, Serialize};

use crate::consent::model::{Consent, Signer};
use crate::domain::{FaceBox, Person, PersonKind};

/// The value of `subject.json`'s `format`.
pub const FORMAT: &str = "consentry-access-package/1";

/// JSON Schema (draft 2020-12) of `subject.json`.
pub const SCHEMA: &str = include_str!("access-package.schema.json");

/// The three folders a package file may live in.
pub const FOLDERS: [&str; 3] = ["photos", "xmp", "documents"];

/// `subject.json`: everything the organisation holds about the data subject,
/// in a structured, machine-readable form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackageDocument {
    /// Always [`FORMAT`].
    pub format: String,
    /// RFC 3339, e.g. `2025-03-01T09:30:00Z`.
    pub generated_at: String,
    pub case: CaseInfo,
    pub person: PersonInfo,
    pub consents: Vec<ConsentInfo>,
    pub photos: Vec<PhotoInfo>,
    /// Downloads, exports and shares of the photos, from the audit log.
    pub recipients: Vec<RecipientInfo>,
    /// The organisation's purposes (`consent.purposes`).
    pub purposes: Vec<String>,
    /// Always false in this format: a package has no place for templates.
    pub templates_included: bool,
    pub notes: Vec<String>,
}

/// The request this package answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseInfo {
    pub id: String,
    /// E.g. `access`.
    pub kind: String,
    /// YYYY-MM-DD.
    pub received: String,
    /// YYYY-MM-DD.
    pub due: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonInfo {
    /// 16 lowercase hex digits.
    pub id: String,
    pub name: String,
    /// `staff`, `patient`, `citizen`, `minor` or `other` ([`person_kind_text`]).
    pub kind: String,
    /// YYYY-MM-DD.
    pub birth_date: Option<String>,
    pub external_ref: Option<String>,
    /// `no-basis`, `allowed` or `opted-out` (`Recognition::as_str`).
    pub recognition: String,
    pub notes: Option<String>,
}

impl PersonInfo {
    pub fn from_person(person: &Person) -> PersonInfo {
        PersonInfo {
            id: person.id.as_str().to_owned(),
            name: person.name.clone(),
            kind: person_kind_text(person.kind).to_owned(),
            birth_date: person.birth_date.map(|d| d.to_string()),
            external_ref: person.external_ref.clone(),
            recognition: person.recognition.as_str().to_owned(),
            notes: person.notes.clone(),
        }
    }
}

/// One consent record (its latest version).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsentInfo {
    /// 16 lowercase hex digits.
    pub id: String,
    pub version: u32,
    /// `subject`, or `guardian: NAME` ([`signer_text`]).
    pub signer: String,
    /// YYYY-MM-DD.
    pub signed_on: String,
    pub purposes: Vec<String>,
    /// Whether it covers face recognition.
    pub recognition: bool,
    /// YYYY-MM-DD.
    pub valid_from: String,
    /// YYYY-MM-DD.
    pub valid_until: Option<String>,
    /// RFC 3339.
    pub withdrawn_at: Option<String>,
    pub withdrawal_reason: Option<String>,
    pub reference: Option<String>,
    /// The signed document's path in the zip file, `documents/...`.
    pub document: Option<String>,
    /// RFC 3339.
    pub recorded_at: String,
    pub recorded_by: String,
}

impl ConsentInfo {
    /// `document`: where the caller puts the signed document in the package
    /// (e.g. from [`document_path`]), if it does.
    pub fn from_consent(consent: &Consent, document: Option<String>) -> ConsentInfo {
        ConsentInfo {
            id: consent.id.as_str().to_owned(),
            version: consent.version,
            signer: signer_text(&consent.signer),
            signed_on: consent.signed_on.to_string(),
            purposes: consent.purposes.iter().cloned().collect(),
            recognition: consent.recognition,
            valid_from: consent.valid_from.to_string(),
            valid_until: consent.valid_until.map(|d| d.to_string()),
            withdrawn_at: consent.withdrawn.as_ref().map(|w| w.at.to_string()),
            withdrawal_reason: consent.withdrawn.as_ref().map(|w| w.reason.clone()),
            reference: consent.reference.clone(),
            document,
            recorded_at: consent.recorded_at.to_string(),
            recorded_by: consent.recorded_by.clone(),
        }
    }
}

/// A photo on which a face was confirmed as the data subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhotoInfo {
    /// The asset id: 64 lowercase hex digits.
    pub asset: String,
    /// Path in the zip file, `photos/...`.
    pub file: String,
    /// Path in the zip file, `xmp/....xmp`.
    pub xmp: Option<String>,
    pub collection: String,
    pub format: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub taken_at: Option<String>,
    /// RFC 3339.
    pub ingested_at: String,
    pub faces: Vec<FaceInfo>,
    pub decisions: Vec<DecisionInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaceInfo {
    /// The face's number in the photo.
    pub face: u32,
    #[serde(rename = "box")]
    pub bbox: FaceBoxInfo,
    /// Always `confirmed`.
    pub status: String,
}

/// Pixels of the displayed (upright) image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaceBoxInfo {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl From<FaceBox> for FaceBoxInfo {
    fn from(b: FaceBox) -> FaceBoxInfo {
        FaceBoxInfo {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

/// A usage decision for one purpose on one day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecisionInfo {
    pub purpose: String,
    /// YYYY-MM-DD.
    pub date: String,
    pub allowed: bool,
    pub reasons: Vec<ReasonInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReasonInfo {
    pub code: String,
    pub blocking: bool,
    pub message: String,
}

/// One audit event that gave a photo to someone (download, export, share).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecipientInfo {
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    /// The audit action, e.g. `asset.download`.
    pub action: String,
    /// 64 lowercase hex digits.
    pub asset: String,
    pub details: BTreeMap<String, String>,
}

/// One file of the package: `photos/NAME`, `xmp/NAME.xmp` or `documents/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSummary {
    /// Zip entries, `README.txt` and `subject.json` included.
    pub entries: usize,
    /// Bytes written to `out`.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("package path {path:?} is not allowed: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("package path {path:?} is given more than once")]
    DuplicatePath { path: String },
    #[error(
        "package paths {path:?} and {other:?} differ only in upper/lower case: unpacked on Windows or macOS, one would overwrite the other"
    )]
    CaseClash { path: String, other: String },
    #[error("subject.json names {path:?} ({field}), but no file with that path was given")]
    MissingFile { path: String, field: String },
    #[error("file {path:?} was given, but subject.json does not name it")]
    UnreferencedFile { path: String },
    #[error("subject.json: {field}: {reason}")]
    InvalidDocument { field: String, reason: String },
    #[error(
        "templates_included is true, but a {FORMAT} package has no place for face templates (biometric data is not handed out by default)"
    )]
    TemplatesNotSupported,
    #[error("could not write subject.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not write the zip file: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("could not write the package: {0}")]
    Io(#[from] std::io::Error),
}

/// `subject` or `guardian: NAME`.
pub fn signer_text(signer: &Signer) -> String {
    match signer {
        Signer::Subject => "subject".to_owned(),
        Signer::Guardian { name } => format!("guardian: {name}"),
    }
}

/// The person kind as `subject.json` (and the store) writes it.
pub fn person_kind_text(kind: PersonKind) -> &'static str {
    match kind {
        PersonKind::Staff => "staff",
        PersonKind::Patient => "patient",
        PersonKind::Citizen => "citizen",
        PersonKind::Minor => "minor",
        PersonKind::Other => "other",
    }
}

/// Checks a file name for use in a package: not empty, no `/`, `\`, `..`,
/// NUL or other control characters.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the file name is empty")
    } else if name.contains('/') || name.contains('\\') {
        Err("the file name contains a slash or backslash")
    } else if name.contains("..") {
        Err("the file name contains \"..\"")
    } else if name.contains('\0') {
        Err("the file name contains a NUL character")
    } else if name.chars().any(char::is_control) {
        Err("the file name contains a control character")
    } else {
        Ok(())
    }
}

fn folder_path(folder: &str, name: &str, suffix: &str) -> Result<String, PackageError> {
    let path = format!("{folder}/{name}{suffix}");
    check_file_name(name).map_err(|reason| PackageError::BadPath {
        path: path.clone(),
        reason,
    })?;
    Ok(path)
}

/// `photos/NAME`, if `NAME` is a usable file name.
pub fn photo_path(name: &str) -> Result<String, PackageError> {
    folder_path("photos", name, "")
}

/// `xmp/NAME.xmp` for the photo file `NAME`.
pub fn xmp_path(photo_name: &str) -> Result<String, PackageError> {
    folder_path("xmp", photo_name, ".xmp")
}

/// `documents/NAME`.
pub fn document_path(name: &str) -> Result<String, PackageError> {
    folder_path("documents", name, "")
}

/// Splits a package path into its folder and file name, or says why not.
fn check_path(path: &str) -> Result<(&'static str, &str), PackageError> {
    let bad = |reason| PackageError::BadPath {
        path: path.to_owned(),
        reason,
    };
    let (folder, name) = path
        .split_once('/')
        .ok_or_else(|| bad("it must be photos/NAME, xmp/NAME.xmp or documents/NAME"))?;
    let folder = FOLDERS
        .into_iter()
        .find(|f| *f == folder)
        .ok_or_else(|| bad("it must start with photos/, xmp/ or documents/"))?;
    check_file_name(name).map_err(bad)?;
    if folder == "xmp" && (!name.ends_with(".xmp") || name.len() <= ".xmp".len()) {
        return Err(bad("an XMP sidecar's name must end in .xmp"));
    }
    Ok((folder, name))
}

/// Writes the package to `out` (from its current position) and finishes the
/// zip file. Everything is checked first: when the input is refused (any
/// error but `Json`, `Zip` and `Io`), nothing has been written to `out`; after
/// a write error, `out` holds a partial zip file the caller should discard.
pub fn write_package(
    out: &mut (impl Write + Seek),
    doc: &PackageDocument,
    readme_contact: &str,
    files: &[PackageFile],
) -> Result<PackageSummary, PackageError> {
    check_paths(files)?;
    validate_document(doc)?;
    check_references(doc, files)?;
    let json = serde_json::to_string_pretty(doc)?;
    let readme = readme(doc, readme_contact, files);

    let start = out.stream_position()?;
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip_time(&doc.generated_at))
        .unix_permissions(0o644);
    let mut zip = zip::ZipWriter::new(&mut *out);
    let mut entries = 0;
    let mut add = |zip: &mut zip::ZipWriter<_>, path: &str, bytes: &[u8]| {
        let large = u64::try_from(bytes.len()).unwrap_or(u64::MAX) >= u64::from(u32::MAX);
        zip.start_file(path, options.large_file(large))?;
        zip.write_all(bytes)?;
        entries += 1;
        Ok::<(), PackageError>(())
    };
    add(&mut zip, "README.txt", readme.as_bytes())?;
    add(&mut zip, "subject.json", json.as_bytes())?;
    for file in files {
        add(&mut zip, &file.path, &file.bytes)?;
    }
    zip.finish()?;
    let end = out.stream_position()?;
    out.flush()?;
    Ok(PackageSummary {
        entries,
        bytes: end - start,
    })
}

/// The zip entries' time: `generated_at`'s date and time as written (local
/// to its offset, as zip times are); 1980-01-01 when out of zip's range.
fn zip_time(generated_at: &str) -> zip::DateTime {
    let num =
        |range: std::ops::Range<usize>| generated_at.get(range).and_then(|s| s.parse::<u16>().ok());
    let time = (|| {
        let year = num(0..4)?;
        let small = |r| num(r).and_then(|v| u8::try_from(v).ok());
        zip::DateTime::from_date_and_time(
            year,
            small(5..7)?,
            small(8..10)?,
            small(11..13)?,
            small(14..16)?,
            small(17..19)?,
        )
        .ok()
    })();
    time.unwrap_or(zip::DateTime::DEFAULT)
}

// ---- checks -------------------------------------------------------------

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PackageError {
    PackageError::InvalidDocument {
        field: field.into(),
        reason: reason.into(),
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_date(field: &str, value: &str) -> Result<(), PackageError> {
    let shape = value.len() == 10
        && value.as_bytes()[4] == b'-'
        && value.as_bytes()[7] == b'-'
        && is_digits(&value[0..4])
        && is_digits(&value[5..7])
        && is_digits(&value[8..10]);
    if shape && value.parse::<jiff::civil::Date>().is_ok() {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not a date (YYYY-MM-DD)"),
        ))
    }
}

/// RFC 3339 with `T` and an offset (`Z` or `+hh:mm`), as the schema's pattern.
fn check_timestamp(field: &str, value: &str) -> Result<(), PackageError> {
    let ok = (|| {
        let b = value.as_bytes();
        if b.len() < 20 || !matches!(b[10], b'T' | b't') {
            return None;
        }
        check_date(field, value.get(..10)?).ok()?;
        let time = value.get(11..19)?;
        let tb = time.as_bytes();
        if tb[2] != b':' || tb[5] != b':' {
            return None;
        }
        let (h, m, s) = (&time[0..2], &time[3..5], &time[6..8]);
        if !(is_digits(h) && is_digits(m) && is_digits(s)) {
            return None;
        }
        if h > "23" || m > "59" || s > "60" {
            return None;
        }
        let mut rest = value.get(19..)?;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
        let offset_ok = match rest {
            "Z" | "z" => true,
            _ => {
                let ob = rest.as_bytes();
                ob.len() == 6
                    && matches!(ob[0], b'+' | b'-')
                    && ob[3] == b':'
                    && is_digits(&rest[1..3])
                    && is_digits(&rest[4..6])
                    && &rest[1..3] <= "23"
                    && &rest[4..6] <= "59"
            }
        };
        (offset_ok && value.parse::<jiff::Timestamp>().is_ok()).then_some(())
    })();
    ok.ok_or_else(|| {
        invalid(
            field,
            format!("{value:?} is not an RFC 3339 date and time with an offset"),
        )
    })
}

fn check_text(field: &str, value: &str) -> Result<(), PackageError> {
    if value.is_empty() {
        Err(invalid(field, "is empty"))
    } else {
        Ok(())
    }
}

fn check_asset(field: &str, value: &str) -> Result<(), PackageError> {
    if is_lower_hex(value, 64) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not an asset id (64 lowercase hex digits)"),
        ))
    }
}

fn check_record_id(field: &str, value: &str) -> Result<(), PackageError> {
    if is_lower_hex(value, 16) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not a record id (16 lowercase hex digits)"),
        ))
    }
}

fn check_in_folder(field: &str, path: &str, folder: &str) -> Result<(), PackageError> {
    match check_path(path) {
        Ok((f, _)) if f == folder => Ok(()),
        Ok(_) => Err(invalid(
            field,
            format!("{path:?} must be in the {folder}/ folder"),
        )),
        Err(e) => Err(invalid(field, e.to_string())),
    }
}

/// What the schema says, checked in Rust so that a written package always
/// fits it.
fn validate_document(doc: &PackageDocument) -> Result<(), PackageError> {
    if doc.format != FORMAT {
        return Err(invalid(
            "format",
            format!("{:?} is not {FORMAT:?}", doc.format),
        ));
    }
    if doc.templates_included {
        return Err(PackageError::TemplatesNotSupported);
    }
    check_timestamp("generated_at", &doc.generated_at)?;

    check_text("case.id", &doc.case.id)?;
    check_text("case.kind", &doc.case.kind)?;
    check_date("case.received", &doc.case.received)?;
    check_date("case.due", &doc.case.due)?;

    let p = &doc.person;
    check_record_id("person.id", &p.id)?;
    if !["staff", "patient", "citizen", "minor", "other"].contains(&p.kind.as_str()) {
        return Err(invalid(
            "person.kind",
            format!(
                "{:?} is not one of staff, patient, citizen, minor, other",
                p.kind
            ),
        ));
    }
    if let Some(d) = &p.birth_date {
        check_date("person.birth_date", d)?;
    }
    if !["no-basis", "allowed", "opted-out"].contains(&p.recognition.as_str()) {
        return Err(invalid(
            "person.recognition",
            format!(
                "{:?} is not one of no-basis, allowed, opted-out",
                p.recognition
            ),
        ));
    }

    for (i, c) in doc.consents.iter().enumerate() {
        let f = |name: &str| format!("consents[{i}].{name}");
        check_record_id(&f("id"), &c.id)?;
        if c.version == 0 {
            return Err(invalid(f("version"), "versions start at 1"));
        }
        let signer_ok = c.signer == "subject"
            || c.signer
                .strip_prefix("guardian: ")
                .is_some_and(|n| !n.is_empty() && !n.contains(['\n', '\r']));
        if !signer_ok {
            return Err(invalid(
                f("signer"),
                format!(
                    "{:?} is neither \"subject\" nor \"guardian: NAME\"",
                    c.signer
                ),
            ));
        }
        check_date(&f("signed_on"), &c.signed_on)?;
        for (j, purpose) in c.purposes.iter().enumerate() {
            check_text(&f(&format!("purposes[{j}]")), purpose)?;
        }
        check_date(&f("valid_from"), &c.valid_from)?;
        if let Some(d) = &c.valid_until {
            check_date(&f("valid_until"), d)?;
        }
        if let Some(t) = &c.withdrawn_at {
            check_timestamp(&f("withdrawn_at"), t)?;
        }
        if let Some(d) = &c.document {
            check_in_folder(&f("document"), d, "documents")?;
        }
        check_timestamp(&f("recorded_at"), &c.recorded_at)?;
    }

    for (i, photo) in doc.photos.iter().enumerate() {
        let f = |name: &str| format!("photos[{i}].{name}");
        check_asset(&f("asset"), &photo.asset)?;
        check_in_folder(&f("file"), &photo.file, "photos")?;
        if let Some(x) = &photo.xmp {
            check_in_folder(&f("xmp"), x, "xmp")?;
        }
        check_text(&f("collection"), &photo.collection)?;
        check_timestamp(&f("ingested_at"), &photo.ingested_at)?;
        for (j, face) in photo.faces.iter().enumerate() {
            let b = &face.bbox;
            if ![b.x, b.y, b.width, b.height].iter().all(|v| v.is_finite())
                || b.width < 0.0
                || b.height < 0.0
            {
                return Err(invalid(
                    f(&format!("faces[{j}].box")),
                    format!("{b:?} is not a rectangle"),
                ));
            }
            if face.status != "confirmed" {
                return Err(invalid(
                    f(&format!("faces[{j}].status")),
                    format!(
                        "{:?}: only faces confirmed as the data subject belong in the package",
                        face.status
                    ),
                ));
            }
        }
        for (j, d) in photo.decisions.iter().enumerate() {
            let g = |name: &str| f(&format!("decisions[{j}].{name}"));
            check_text(&g("purpose"), &d.purpose)?;
            check_date(&g("date"), &d.date)?;
            for (k, r) in d.reasons.iter().enumerate() {
                check_text(&g(&format!("reasons[{k}].code")), &r.code)?;
            }
        }
    }

    for (i, r) in doc.recipients.iter().enumerate() {
        let f = |name: &str| format!("recipients[{i}].{name}");
        check_timestamp(&f("at"), &r.at)?;
        check_text(&f("actor"), &r.actor)?;
        check_text(&f("action"), &r.action)?;
        check_asset(&f("asset"), &r.asset)?;
    }
    for (i, purpose) in doc.purposes.iter().enumerate() {
        check_text(&format!("purposes[{i}]"), purpose)?;
    }
    Ok(())
}

/// The files' paths are well formed and distinct.
fn check_paths(files: &[PackageFile]) -> Result<(), PackageError> {
    let mut given: BTreeSet<&str> = BTreeSet::new();
    let mut folded: BTreeMap<String, &str> = BTreeMap::new();
    for file in files {
        check_path(&file.path)?;
        if !given.insert(&file.path) {
            return Err(PackageError::DuplicatePath {
                path: file.path.clone(),
            });
        }
        if let Some(other) = folded.insert(file.path.to_lowercase(), &file.path) {
            return Err(PackageError::CaseClash {
                path: file.path.clone(),
                other: other.to_owned(),
            });
        }
    }
    Ok(())
}

/// The files are exactly the paths the document names.
fn check_references(doc: &PackageDocument, files: &[PackageFile]) -> Result<(), PackageError> {
    let given: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();

    // Path -> the first field naming it. A photo or sidecar belongs to one
    // photo; one signed document may cover several consent records.
    let mut named: BTreeMap<&str, String> = BTreeMap::new();
    let mut name = |path: &'_ str, field: String, shared: bool| -> Result<(), PackageError> {
        let path: &str = given
            .get(path)
            .copied()
            .ok_or_else(|| PackageError::MissingFile {
                path: path.to_owned(),
                field: field.clone(),
            })?;
        match named.get(path) {
            Some(first) if !shared => Err(invalid(
                field,
                format!("{path:?} is already named by {first}"),
            )),
            Some(_) => Ok(()),
            None => {
                named.insert(path, field);
                Ok(())
            }
        }
    };
    for (i, photo) in doc.photos.iter().enumerate() {
        name(&photo.file, format!("photos[{i}].file"), false)?;
        if let Some(x) = &photo.xmp {
            name(x, format!("photos[{i}].xmp"), false)?;
        }
    }
    for (i, c) in doc.consents.iter().enumerate() {
        if let Some(d) = &c.document {
            name(d, format!("consents[{i}].document"), true)?;
        }
    }
    if let Some(file) = files.iter().find(|f| !named.contains_key(f.path.as_str())) {
        return Err(PackageError::UnreferencedFile {
            path: file.path.clone(),
        });
    }
    Ok(())
}

// ---- README ---------------------------------------------------------------

fn readme(doc: &PackageDocument, contact: &str, files: &[PackageFile]) -> String {
    let count = |folder: &str| {
        files
            .iter()
            .filter(|f| check_path(&f.path).is_ok_and(|(f, _)| f == folder))
            .count()
    };
    let files_in = |folder: &str| match count(folder) {
        0 => "none in this package".to_owned(),
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    };
    let contact = contact.trim();
    let contact = if contact.is_empty() {
        "the organisation that sent you this package"
    } else {
        contact
    };
    let mut text = format!(
        "\
YOUR PERSONAL DATA IN OUR PHOTO BANK
====================================

This package answers your request {case} ({kind}), received on
{received}. It was put together on {generated}.

It holds a copy of the personal data about you that we keep in our
photo bank, and the photos in which you appear (EU General Data
Protection Regulation, Articles 15 and 20).


WHAT IS IN THIS PACKAGE
-----------------------

README.txt
    This explanation.

subject.json
    Everything we record about you, in a structured, machine-readable
    form (JSON): your details as we hold them; your consents (model
    releases), including any you withdrew; the photos in which a face
    was confirmed as yours, with where the face is and whether the photo
    may be used for each purpose; who downloaded, exported or shared
    those photos, and when; and the purposes for which we use photos.
    A text editor shows it; other programs can read it directly.

photos/
    The photo files, exactly as we received them ({photos}).

xmp/
    One \"XMP sidecar\" per photo ({xmp}): the photo's description, the
    areas where your face is, and the consent status, in a standard
    format that photo programs such as digiKam, darktable or Adobe
    Lightroom can read alongside the photo.

documents/
    The signed consent forms we hold for you ({documents}).


WHAT IS NOT IN THIS PACKAGE
---------------------------

Face templates. To recognise faces, our system calculates a series of
numbers from each face (a \"face template\"). Templates are biometric
data, a special category of personal data (Article 9). We do not hand
them out by default: they mean nothing outside the software that made
them, and a copy outside our systems would be a risk to you.

Only photos in which one of our staff confirmed that a face is yours
are included: a photo the system merely thought might show you could
show someone else. If you think we missed a photo of you, tell us.


QUESTIONS
---------

For questions about this package, or to have data about you corrected,
restricted or erased, contact:

    {contact}
",
        case = doc.case.id,
        kind = doc.case.kind,
        received = doc.case.received,
        generated = doc.generated_at,
        photos = files_in("photos"),
        xmp = files_in("xmp"),
        documents = files_in("documents"),
    );
    let notes: Vec<&str> = doc
        .notes
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if !notes.is_empty() {
        text.push_str("\n\nNOTES\n-----\n\n");
        for note in notes {
            text.push_str("- ");
            text.push_str(note);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};
    use std::process::Command;

    use opencv::core::{CV_8UC3, Mat, Scalar, Vector};
    use opencv::imgcodecs;
    use opencv::prelude::*;

    use crate::domain::AssetId;

    fn require_tools() -> bool {
        std::env::var("CONSENTRY_REQUIRE_TESTDATA").is_ok_and(|v| !v.is_empty() && v != "0")
    }

    /// A real (tiny) JPEG of one colour.
    fn jpeg(colour: [f64; 3]) -> Vec<u8> {
        let img = Mat::new_rows_cols_with_default(
            12,
            16,
            CV_8UC3,
            Scalar::new(colour[0], colour[1], colour[2], 0.0),
        )
        .unwrap();
        let mut out = Vector::<u8>::new();
        imgcodecs::imencode(".jpg", &img, &mut out, &Vector::new()).unwrap();
        let bytes = out.to_vec();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "JPEG SOI");
        assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9], "JPEG EOI");
        bytes
    }

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

    /// Two photos (the first with a sidecar), one consent with a document.
    fn sample() -> (PackageDocument, Vec<PackageFile>) {
        let first = jpeg([30.0, 120.0, 200.0]);
        let second = jpeg([200.0, 40.0, 10.0]);
        let xmp = crate::export::xmp::sidecar(&crate::export::xmp::SidecarInput {
            displayed_width: 16,
            displayed_height: 12,
            orientation: 1,
            ..Default::default()
        });
        let face = |no, x| FaceInfo {
            face: no,
            bbox: FaceBoxInfo::from(FaceBox {
                x,
                y: 2.0,
                width: 5.5,
                height: 6.0,
            }),
            status: "confirmed".into(),
        };
        let photo = |bytes: &[u8], name: &str, xmp: Option<String>, faces| PhotoInfo {
            asset: AssetId::of_bytes(bytes).0,
            file: photo_path(name).unwrap(),
            xmp,
            collection: "events".into(),
            format: Some("JPEG".into()),
            width: Some(16),
            height: Some(12),
            taken_at: Some("2024-06-01T14:03:00".into()),
            ingested_at: "2024-06-02T08:00:00Z".into(),
            faces,
            decisions: vec![DecisionInfo {
                purpose: "website".into(),
                date: "2025-03-01".into(),
                allowed: false,
                reasons: vec![ReasonInfo {
                    code: "consent-withdrawn".into(),
                    blocking: true,
                    message: "the consent was withdrawn on 2025-01-15".into(),
                }],
            }],
        };
        let photos = vec![
            photo(
                &first,
                "2024-06-01 summer party.jpg",
                Some(xmp_path("2024-06-01 summer party.jpg").unwrap()),
                vec![face(0, 1.0), face(3, 9.25)],
            ),
            photo(&second, "IMG_0042.JPG", None, vec![face(1, 4.0)]),
        ];
        let asset = photos[0].asset.clone();
        let doc = PackageDocument {
            format: FORMAT.into(),
            generated_at: "2025-03-01T09:30:15+01:00".into(),
            case: CaseInfo {
                id: "DSR-2025-0007".into(),
                kind: "access".into(),
                received: "2025-02-20".into(),
                due: "2025-03-20".into(),
            },
            person: PersonInfo {
                id: "0123456789abcdef".into(),
                name: "Anna de Vries".into(),
                kind: "staff".into(),
                birth_date: None,
                external_ref: Some("HR-1234".into()),
                recognition: "allowed".into(),
                notes: None,
            },
            consents: vec![ConsentInfo {
                id: "fedcba9876543210".into(),
                version: 2,
                signer: "subject".into(),
                signed_on: "2024-05-01".into(),
                purposes: vec!["intranet".into(), "website".into()],
                recognition: true,
                valid_from: "2024-05-01".into(),
                valid_until: None,
                withdrawn_at: Some("2025-01-15T10:00:00Z".into()),
                withdrawal_reason: Some("changed my mind".into()),
                reference: Some("form 12".into()),
                document: Some(document_path("release 2024-05-01.pdf").unwrap()),
                recorded_at: "2025-01-15T10:05:00.25Z".into(),
                recorded_by: "dpo".into(),
            }],
            photos,
            recipients: vec![RecipientInfo {
                at: "2024-07-01T12:00:00Z".into(),
                actor: "editor".into(),
                action: "asset.download".into(),
                asset,
                details: BTreeMap::from([("purpose".into(), "website".into())]),
            }],
            purposes: vec!["intranet".into(), "website".into(), "print".into()],
            templates_included: false,
            notes: vec!["Three candidate photos were reviewed and are not of you.".into()],
        };
        let files = vec![
            PackageFile {
                path: "photos/2024-06-01 summer party.jpg".into(),
                bytes: first,
            },
            PackageFile {
                path: "photos/IMG_0042.JPG".into(),
                bytes: second,
            },
            PackageFile {
                path: "xmp/2024-06-01 summer party.jpg.xmp".into(),
                bytes: xmp.into_bytes(),
            },
            PackageFile {
                path: "documents/release 2024-05-01.pdf".into(),
                bytes: PDF.to_vec(),
            },
        ];
        (doc, files)
    }

    fn write(doc: &PackageDocument, files: &[PackageFile]) -> Result<Vec<u8>, PackageError> {
        let mut out = Cursor::new(Vec::new());
        let result = write_package(&mut out, doc, "dpo@example.org, +31 20 123 4567", files);
        if result.is_err() {
            assert!(
                out.get_ref().is_empty(),
                "nothing is written when the package is refused"
            );
        }
        let summary = result?;
        assert_eq!(summary.bytes, out.get_ref().len() as u64);
        assert_eq!(summary.entries, files.len() + 2);
        Ok(out.into_inner())
    }

    fn entry(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str) -> Vec<u8> {
        let mut file = zip.by_name(name).unwrap();
        assert_eq!(file.compression(), zip::CompressionMethod::Stored, "{name}");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn the_zip_holds_every_file_byte_for_byte() {
        let (doc, files) = sample();
        let bytes = write(&doc, &files).unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
        let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        let mut expected = vec!["README.txt".to_owned(), "subject.json".to_owned()];
        expected.extend(files.iter().map(|f| f.path.clone()));
        assert_eq!(names, expected);
        for file in &files {
            assert_eq!(entry(&mut zip, &file.path), file.bytes, "{}", file.path);
        }

        let json = String::from_utf8(entry(&mut zip, "subject.json")).unwrap();
        assert!(
            json.contains("\n  \"format\": \"consentry-access-package/1\""),
            "pretty-printed"
        );
        let back: PackageDocument = serde_json::from_str(&json).unwrap();
        assert_eq!(back, doc);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["photos"][0]["faces"][1]["box"]["x"], 9.25);
        assert!(
            value["person"]["birth_date"].is_null(),
            "None is written as null"
        );
        assert!(value["photos"][1]["xmp"].is_null());

        let readme = String::from_utf8(entry(&mut zip, "README.txt")).unwrap();
        for needle in [
            "dpo@example.org, +31 20 123 4567",
            "DSR-2025-0007",
            "Face templates",
            "biometric",
            "photos/",
            "xmp/",
            "documents/",
            "subject.json",
            "(2 files)",
            "(1 file)",
            "Three candidate photos",
        ] {
            assert!(
                readme.contains(needle),
                "README lacks {needle:?}:\n{readme}"
            );
        }

        // The entries carry the package's own time, not the clock's.
        let modified = zip
            .by_name("subject.json")
            .unwrap()
            .last_modified()
            .unwrap();
        assert_eq!(modified.to_string(), "2025-03-01 09:30:14");

        // Same input, same bytes.
        assert_eq!(write(&doc, &files).unwrap(), bytes);
    }

    #[test]
    fn unzip_tests_the_package_clean() {
        let (doc, files) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.zip");
        let mut out = std::fs::File::create(&path).unwrap();
        let summary = write_package(&mut out, &doc, "dpo@example.org", &files).unwrap();
        drop(out);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), summary.bytes);
        let run = match Command::new("unzip").arg("-t").arg(&path).output() {
            Ok(run) => run,
            Err(e) => {
                assert!(
                    !require_tools(),
                    "unzip not found ({e}) and CONSENTRY_REQUIRE_TESTDATA is set"
                );
                eprintln!("skipped: unzip not installed (Debian: unzip): {e}");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "unzip -t failed: {}\n{stdout}{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(stdout.contains("No errors detected"), "{stdout}");
        for file in &files {
            assert!(
                stdout.contains(&file.path),
                "{} not tested:\n{stdout}",
                file.path
            );
        }

        // Unpacked, the files are the same bytes.
        let target = dir.path().join("unpacked");
        let run = Command::new("unzip")
            .arg("-q")
            .arg(&path)
            .arg("-d")
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        for file in &files {
            assert_eq!(std::fs::read(target.join(&file.path)).unwrap(), file.bytes);
        }
        assert!(target.join("README.txt").is_file());
    }

    // ---- schema -----------------------------------------------------------

    /// Every object in the schema lists all its properties as required, and
    /// the document's top level has exactly the schema's properties.
    #[test]
    fn the_schema_requires_every_property_it_names() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["properties"]["format"]["const"], FORMAT);
        fn walk(v: &serde_json::Value, at: &str, objects: &mut usize) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                        *objects += 1;
                        let names: BTreeSet<&str> = props.keys().map(String::as_str).collect();
                        let required: BTreeSet<&str> = map["required"]
                            .as_array()
                            .unwrap_or_else(|| panic!("{at}: no required"))
                            .iter()
                            .map(|r| r.as_str().unwrap())
                            .collect();
                        assert_eq!(names, required, "{at}");
                        assert_eq!(map["additionalProperties"], false, "{at}");
                    }
                    for (k, child) in map {
                        walk(child, &format!("{at}/{k}"), objects);
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(child, &format!("{at}/{i}"), objects);
                    }
                }
                _ => {}
            }
        }
        let mut objects = 0;
        walk(&schema, "#", &mut objects);
        assert_eq!(objects, 10, "objects in the schema");

        let (doc, _) = sample();
        let value = serde_json::to_value(&doc).unwrap();
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let props: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, props);
    }

    const VALIDATE: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
verdicts = []
for instance in json.load(open(sys.argv[2])):
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    verdicts.append([f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors])
print(json.dumps(verdicts))
"#;

    /// The schema's errors for each instance, by `python3` with `jsonschema`;
    /// `None` (said visibly) when either is missing.
    fn schema_errors(instances: &[serde_json::Value]) -> Option<Vec<Vec<String>>> {
        // `$CONSENTRY_PYTHON`, else the first `python3` on PATH that has
        // jsonschema (a pyenv interpreter does not see Debian's package).
        let candidates: Vec<String> = std::env::var("CONSENTRY_PYTHON")
            .into_iter()
            .chain(std::env::var_os("PATH").into_iter().flat_map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("python3").display().to_string())
                    .collect::<Vec<_>>()
            }))
            .collect();
        let python = candidates
            .iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import jsonschema"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .cloned()
            .unwrap_or_else(|| "python3".into());
        let skip = |why: String| {
            assert!(
                !require_tools(),
                "{why} and CONSENTRY_REQUIRE_TESTDATA is set"
            );
            eprintln!("skipped: {why} (Debian: python3-jsonschema)");
        };
        match Command::new(&python)
            .args(["-c", "import jsonschema"])
            .output()
        {
            Err(e) => {
                skip(format!("{python} not found ({e})"));
                return None;
            }
            Ok(run) if !run.status.success() => {
                skip(format!(
                    "{python} cannot import jsonschema: {}",
                    String::from_utf8_lossy(&run.stderr).trim()
                ));
                return None;
            }
            Ok(_) => {}
        }
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("access-package.schema.json");
        let data = dir.path().join("instances.json");
        std::fs::write(&schema, SCHEMA).unwrap();
        std::fs::write(&data, serde_json::to_vec(instances).unwrap()).unwrap();
        let run = Command::new(&python)
            .args(["-c", VALIDATE])
            .arg(&schema)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "jsonschema failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        Some(serde_json::from_slice(&run.stdout).unwrap())
    }

    fn subject_json(bytes: &[u8]) -> serde_json::Value {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        serde_json::from_slice(&entry(&mut zip, "subject.json")).unwrap()
    }

    #[test]
    fn subject_json_fits_the_schema_and_the_schema_is_strict() {
        let (doc, files) = sample();
        let good = subject_json(&write(&doc, &files).unwrap());

        // A second good one: every optional value set, a guardian, no photos.
        let mut full = doc.clone();
        full.person.birth_date = Some("2012-02-29".into());
        full.person.notes = Some("prefers Anna".into());
        full.person.kind = "minor".into();
        full.consents[0].signer = "guardian: Piet de Vries".into();
        full.consents[0].valid_until = Some("2026-12-31".into());
        full.consents[0].document = None;
        full.photos.clear();
        full.recipients.clear();
        let full = subject_json(&write(&full, &[]).unwrap());

        let bad: Vec<(&str, serde_json::Value)> = {
            let mut cases = Vec::new();
            let mut edit = |what: &'static str, f: &dyn Fn(&mut serde_json::Value)| {
                let mut v = good.clone();
                f(&mut v);
                cases.push((what, v));
            };
            edit("extra top-level property", &|v| {
                v["templates"] = serde_json::json!([]);
            });
            edit("extra property in a face box", &|v| {
                v["photos"][0]["faces"][0]["box"]["depth"] = 1.into();
            });
            edit("extra property in a consent", &|v| {
                v["consents"][0]["person"] = "0123456789abcdef".into();
            });
            edit("asset id in upper case", &|v| {
                let id = v["photos"][0]["asset"].as_str().unwrap().to_uppercase();
                v["photos"][0]["asset"] = id.into();
            });
            edit("asset id too short", &|v| {
                v["recipients"][0]["asset"] = "ab".repeat(31).into();
            });
            edit("date not YYYY-MM-DD", &|v| {
                v["case"]["received"] = "20-02-2025".into();
            });
            edit("timestamp without offset", &|v| {
                v["generated_at"] = "2025-03-01T09:30:15".into();
            });
            edit("other format", &|v| {
                v["format"] = "consentry-access-package/2".into();
            });
            edit("null property left out", &|v| {
                v["person"].as_object_mut().unwrap().remove("birth_date");
            });
            edit("templates included", &|v| {
                v["templates_included"] = true.into();
            });
            edit("photo path escaping its folder", &|v| {
                v["photos"][1]["file"] = "photos/../README.txt".into();
            });
            edit("suggested face", &|v| {
                v["photos"][0]["faces"][0]["status"] = "suggested".into();
            });
            edit("non-string audit detail", &|v| {
                v["recipients"][0]["details"]["count"] = 2.into();
            });
            cases
        };

        let mut instances = vec![good, full];
        instances.extend(bad.iter().map(|(_, v)| v.clone()));
        let Some(verdicts) = schema_errors(&instances) else {
            return;
        };
        assert!(
            verdicts[0].is_empty(),
            "the sample fails: {:?}",
            verdicts[0]
        );
        assert!(
            verdicts[1].is_empty(),
            "the full sample fails: {:?}",
            verdicts[1]
        );
        for ((what, _), errors) in bad.iter().zip(&verdicts[2..]) {
            assert!(
                !errors.is_empty(),
                "the schema accepts a document with {what}"
            );
        }
    }

    // ---- refusals ---------------------------------------------------------

    fn refused(doc: &PackageDocument, files: &[PackageFile]) -> PackageError {
        write(doc, files).expect_err("the package must be refused")
    }

    #[test]
    fn a_named_file_that_is_missing_is_refused() {
        let (doc, mut files) = sample();
        files.retain(|f| f.path != "documents/release 2024-05-01.pdf");
        let err = refused(&doc, &files);
        assert!(
            matches!(&err, PackageError::MissingFile { path, field }
                if path == "documents/release 2024-05-01.pdf" && field == "consents[0].document"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("documents/release 2024-05-01.pdf"),
            "{err}"
        );

        let (doc, mut files) = sample();
        files.retain(|f| f.path != "photos/IMG_0042.JPG");
        let err = refused(&doc, &files);
        assert!(
            matches!(&err, PackageError::MissingFile { path, .. } if path == "photos/IMG_0042.JPG"),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_the_document_does_not_name_is_refused() {
        let (doc, mut files) = sample();
        files.push(PackageFile {
            path: "photos/someone else.jpg".into(),
            bytes: jpeg([0.0, 0.0, 0.0]),
        });
        let err = refused(&doc, &files);
        assert!(
            matches!(&err, PackageError::UnreferencedFile { path } if path == "photos/someone else.jpg"),
            "{err:?}"
        );
        assert!(err.to_string().contains("photos/someone else.jpg"), "{err}");
    }

    #[test]
    fn bad_paths_are_refused() {
        for path in [
            "photos/..",
            "photos/../README.txt",
            "photos/a..jpg",
            "photos/",
            "photos/sub/a.jpg",
            "photos/a\\b.jpg",
            "photos/a\0.jpg",
            "photos/a\n.jpg",
            "a.jpg",
            "/photos/a.jpg",
            "templates/a.bin",
            "README.txt",
            "xmp/a.jpg",
            "xmp/.xmp",
        ] {
            let (mut doc, mut files) = sample();
            // Named by the document too, so only the path itself is at fault.
            doc.photos[1].file = path.into();
            files[1].path = path.into();
            let err = refused(&doc, &files);
            assert!(
                matches!(&err, PackageError::BadPath { path: p, .. } if p == path),
                "{path:?}: {err:?}"
            );
        }
        assert!(photo_path("..").is_err());
        assert!(xmp_path("a/b.jpg").is_err());
        assert_eq!(xmp_path("a.jpg").unwrap(), "xmp/a.jpg.xmp");
        assert_eq!(
            document_path("").unwrap_err().to_string(),
            "package path \"documents/\" is not allowed: the file name is empty"
        );
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let (doc, mut files) = sample();
        files.push(files[1].clone());
        let err = refused(&doc, &files);
        assert!(
            matches!(&err, PackageError::DuplicatePath { path } if path == "photos/IMG_0042.JPG"),
            "{err:?}"
        );

        let (mut doc, mut files) = sample();
        files[1].path = "photos/img_0042.jpg".into();
        files.push(PackageFile {
            path: "photos/IMG_0042.JPG".into(),
            bytes: vec![1],
        });
        doc.photos.push(PhotoInfo {
            file: "photos/img_0042.jpg".into(),
            ..doc.photos[1].clone()
        });
        let err = refused(&doc, &files);
        assert!(matches!(&err, PackageError::CaseClash { .. }), "{err:?}");

        // Two photos naming one file.
        let (mut doc, files) = sample();
        doc.photos[1].file = doc.photos[0].file.clone();
        let err = refused(&doc, &files);
        assert!(
            matches!(&err, PackageError::InvalidDocument { field, .. } if field == "photos[1].file"),
            "{err:?}"
        );
    }

    #[test]
    fn a_document_that_would_not_fit_the_schema_is_refused() {
        type Edit = fn(&mut PackageDocument);
        let cases: [(&str, Edit); 9] = [
            ("photos[0].asset", |d| {
                d.photos[0].asset.make_ascii_uppercase()
            }),
            ("recipients[0].asset", |d| {
                d.recipients[0].asset.truncate(63)
            }),
            ("case.due", |d| d.case.due = "2025-02-30".into()),
            ("generated_at", |d| {
                d.generated_at = "2025-03-01 09:30:15Z".into()
            }),
            ("format", |d| d.format = "consentry-access-package/2".into()),
            ("person.kind", |d| d.person.kind = "Staff".into()),
            ("consents[0].signer", |d| {
                d.consents[0].signer = "guardian: ".into()
            }),
            ("photos[0].faces[1].box", |d| {
                d.photos[0].faces[1].bbox.width = f32::NAN
            }),
            ("photos[1].faces[0].status", |d| {
                d.photos[1].faces[0].status = "suggested".into()
            }),
        ];
        for (field, edit) in cases {
            let (mut doc, files) = sample();
            edit(&mut doc);
            let err = refused(&doc, &files);
            assert!(
                matches!(&err, PackageError::InvalidDocument { field: f, .. } if f == field),
                "{field}: {err:?}"
            );
        }
        let (mut doc, files) = sample();
        doc.templates_included = true;
        assert!(matches!(
            refused(&doc, &files),
            PackageError::TemplatesNotSupported
        ));
    }

    #[test]
    fn helpers_match_the_schema_vocabulary() {
        assert_eq!(signer_text(&Signer::Subject), "subject");
        assert_eq!(
            signer_text(&Signer::Guardian {
                name: "Piet".into()
            }),
            "guardian: Piet"
        );
        for kind in [
            PersonKind::Staff,
            PersonKind::Patient,
            PersonKind::Citizen,
            PersonKind::Minor,
            PersonKind::Other,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                person_kind_text(kind),
                "person_kind_text agrees with the store's spelling"
            );
        }
    }

    #[test]
    fn consent_info_from_a_consent_record_fits() {
        let consent = Consent {
            id: crate::consent::model::ConsentId("fedcba9876543210".into()),
            version: 3,
            person: crate::domain::PersonId("0123456789abcdef".into()),
            signer: Signer::Guardian {
                name: "Piet de Vries".into(),
            },
            signed_on: jiff::civil::date(2024, 5, 1),
            purposes: BTreeSet::from(["website".to_owned(), "intranet".to_owned()]),
            recognition: false,
            valid_from: jiff::civil::date(2024, 5, 2),
            valid_until: Some(jiff::civil::date(2026, 5, 1)),
            withdrawn: Some(crate::consent::model::Withdrawal {
                at: "2025-01-15T10:00:00.5Z".parse().unwrap(),
                reason: "moved away".into(),
            }),
            document: None,
            reference: None,
            notes: Some("internal".into()),
            recorded_at: "2025-01-15T10:05:00Z".parse().unwrap(),
            recorded_by: "dpo".into(),
            change: "withdrawn: moved away".into(),
        };
        let info = ConsentInfo::from_consent(&consent, Some("documents/r.pdf".into()));
        assert_eq!(info.signer, "guardian: Piet de Vries");
        assert_eq!(info.purposes, vec!["intranet", "website"]);
        assert_eq!(info.valid_until.as_deref(), Some("2026-05-01"));
        assert_eq!(info.withdrawn_at.as_deref(), Some("2025-01-15T10:00:00.5Z"));
        assert_eq!(info.withdrawal_reason.as_deref(), Some("moved away"));
        let (mut doc, files) = sample();
        doc.consents = vec![ConsentInfo {
            document: Some("documents/release 2024-05-01.pdf".into()),
            ..info
        }];
        write(&doc, &files).unwrap();
    }
}
