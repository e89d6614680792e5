//! The console's static files, embedded from `web/static/` at build time (no
//! CDN, no external fonts or scripts: the console works without a network).

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/console.js"),
    ),
];

/// The MIME type and bytes of `name` (a file name under `/static/`).
pub fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, mime, bytes)| (*mime, *bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stylesheet_and_script_are_embedded_and_nothing_else() {
        assert!(super::get("console.css").unwrap().1.len() > 1000);
        assert!(super::get("console.js").is_some());
        assert!(super::get("../Cargo.toml").is_none());
        for (name, _, bytes) in super::FILES {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name} refers to another site"
            );
        }
    }
}
