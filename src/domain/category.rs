//! The built-in categories: their names, ids and the extensions that put a
//! file in them. Vocabulary every layer shares (the engine sorts by it, the
//! API lists it, metrics label by it); the rest of categorizing (custom
//! rules, magic bytes) is the engine's.

/// The built-in categories, one consistent list for the whole product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltIn {
    Documents,
    Images,
    Videos,
    Audio,
    Archives,
    Code,
    Spreadsheets,
    Presentations,
    Ebooks,
    Fonts,
    Executables,
    Other,
}

impl BuiltIn {
    /// Every built-in category, in display order (Other last).
    pub const ALL: [BuiltIn; 12] = [
        BuiltIn::Documents,
        BuiltIn::Images,
        BuiltIn::Videos,
        BuiltIn::Audio,
        BuiltIn::Archives,
        BuiltIn::Code,
        BuiltIn::Spreadsheets,
        BuiltIn::Presentations,
        BuiltIn::Ebooks,
        BuiltIn::Fonts,
        BuiltIn::Executables,
        BuiltIn::Other,
    ];

    /// The display name, also what `{category}` renders to ("Documents").
    pub const fn name(self) -> &'static str {
        match self {
            BuiltIn::Documents => "Documents",
            BuiltIn::Images => "Images",
            BuiltIn::Videos => "Videos",
            BuiltIn::Audio => "Audio",
            BuiltIn::Archives => "Archives",
            BuiltIn::Code => "Code",
            BuiltIn::Spreadsheets => "Spreadsheets",
            BuiltIn::Presentations => "Presentations",
            BuiltIn::Ebooks => "Ebooks",
            BuiltIn::Fonts => "Fonts",
            BuiltIn::Executables => "Executables",
            BuiltIn::Other => "Other",
        }
    }

    /// The lower-case id used in resource names (`categories/images`).
    pub const fn id(self) -> &'static str {
        match self {
            BuiltIn::Documents => "documents",
            BuiltIn::Images => "images",
            BuiltIn::Videos => "videos",
            BuiltIn::Audio => "audio",
            BuiltIn::Archives => "archives",
            BuiltIn::Code => "code",
            BuiltIn::Spreadsheets => "spreadsheets",
            BuiltIn::Presentations => "presentations",
            BuiltIn::Ebooks => "ebooks",
            BuiltIn::Fonts => "fonts",
            BuiltIn::Executables => "executables",
            BuiltIn::Other => "other",
        }
    }

    /// The built-in category with this display name or id, compared
    /// case-insensitively.
    pub fn from_name(name: &str) -> Option<BuiltIn> {
        BuiltIn::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
    }

    /// The extensions of this category: lower-case, without the dot. Each
    /// extension appears in exactly one category; Other has none.
    #[rustfmt::skip]
    pub const fn extensions(self) -> &'static [&'static str] {
        match self {
            BuiltIn::Documents => &[
                "pdf", "doc", "docx", "docm", "dot", "dotx", "dotm", "odt", "ott", "fodt", "rtf",
                "txt", "text", "md", "markdown", "mdown", "rst", "adoc", "asciidoc", "org", "tex",
                "latex", "ltx", "bib", "pages", "wpd", "wps", "xps", "oxps", "ps", "abw", "log",
                "nfo",
            ],
            BuiltIn::Images => &[
                "jpg", "jpeg", "jpe", "jfif", "pjpeg", "png", "apng", "gif", "bmp", "dib", "tiff",
                "tif", "webp", "heic", "heif", "avif", "jxl", "jp2", "j2k", "jpf", "jpx", "jxr",
                "svg", "svgz", "ico", "icns", "cur", "tga", "pcx", "ppm", "pgm", "pbm", "pnm",
                "exr", "hdr", "dds", "psd", "psb", "xcf", "kra", "ora", "ai", "eps", "raw", "cr2",
                "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "dng", "orf", "rw2", "raf", "pef",
                "srw", "x3f", "3fr", "erf", "kdc", "mrw", "dcr", "rwl", "iiq",
            ],
            BuiltIn::Videos => &[
                "mp4", "m4v", "mkv", "mk3d", "mov", "qt", "avi", "wmv", "asf", "flv", "f4v",
                "webm", "mpg", "mpeg", "mpe", "m1v", "m2v", "mp2v", "m2ts", "mts", "m2t", "3gp",
                "3g2", "ogv", "vob", "rm", "rmvb", "divx", "dv", "mxf", "y4m", "h264", "h265",
                "hevc",
            ],
            BuiltIn::Audio => &[
                "mp3", "wav", "wave", "flac", "aac", "m4a", "m4b", "m4p", "m4r", "ogg", "oga",
                "opus", "spx", "wma", "aiff", "aif", "aifc", "alac", "ape", "amr", "awb", "mid",
                "midi", "kar", "dsf", "dff", "wv", "mka", "au", "snd", "ra", "caf", "ac3", "dts",
                "mpc", "tta", "voc", "xm", "it", "s3m",
            ],
            BuiltIn::Archives => &[
                "zip", "zipx", "tar", "gz", "gzip", "tgz", "bz2", "bzip2", "tbz", "tbz2", "bz3",
                "xz", "txz", "lz", "tlz", "lzma", "lz4", "zst", "zstd", "tzst", "z", "taz", "7z",
                "rar", "cab", "arj", "lzh", "lha", "ace", "sit", "sitx", "cpio", "ar", "war",
                "ear", "par2", "br", "iso", "img", "vhd", "vhdx", "vmdk", "qcow2", "crx",
            ],
            BuiltIn::Code => &[
                "rs", "py", "pyi", "pyw", "ipynb", "js", "mjs", "cjs", "jsx", "ts", "cts", "tsx",
                "go", "c", "h", "cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "inl", "m",
                "mm", "java", "kt", "kts", "scala", "sc", "groovy", "gradle", "clj", "cljs",
                "cljc", "edn", "rb", "erb", "php", "phtml", "pl", "pm", "lua", "r", "jl", "swift",
                "cs", "csx", "fs", "fsx", "fsi", "vb", "vbs", "dart", "ex", "exs", "erl", "hrl",
                "hs", "lhs", "elm", "ml", "mli", "nim", "zig", "d", "pas", "f90", "f95", "for",
                "cob", "asm", "s", "sh", "bash", "zsh", "fish", "ksh", "csh", "ps1", "psm1", "bat",
                "cmd", "awk", "sed", "html", "htm", "xhtml", "css", "scss", "sass", "less", "styl",
                "vue", "svelte", "astro", "json", "jsonc", "json5", "ndjson", "jsonl", "yaml",
                "yml", "toml", "ini", "cfg", "conf", "properties", "env", "xml", "xsd", "xsl",
                "xslt", "dtd", "sql", "graphql", "gql", "proto", "thrift", "avsc", "tf", "tfvars",
                "hcl", "nix", "cmake", "mk", "mak", "make", "dockerfile", "vim", "el", "lisp",
                "scm", "rkt", "sol", "glsl", "hlsl", "wgsl", "cu", "diff", "patch", "lock", "mod",
            ],
            BuiltIn::Spreadsheets => &[
                "xls", "xlsx", "xlsm", "xlsb", "xlt", "xltx", "xltm", "ods", "ots", "fods", "csv",
                "tsv", "tab", "numbers", "gnumeric", "dif", "slk",
            ],
            BuiltIn::Presentations => &[
                "ppt", "pptx", "pptm", "pps", "ppsx", "ppsm", "pot", "potx", "potm", "odp", "otp",
                "fodp", "key", "keynote", "sxi",
            ],
            BuiltIn::Ebooks => &[
                "epub", "mobi", "azw", "azw3", "azw4", "kfx", "kf8", "fb2", "fbz", "djvu", "djv",
                "lit", "lrf", "ibooks", "cbz", "cbr", "cb7", "cbt",
            ],
            BuiltIn::Fonts => &[
                "ttf", "otf", "woff", "woff2", "eot", "ttc", "otc", "fon", "fnt", "pfb", "pfm",
                "afm", "bdf", "pcf",
            ],
            BuiltIn::Executables => &[
                "exe", "msi", "msix", "msixbundle", "appx", "appxbundle", "dmg", "pkg", "mpkg",
                "app", "deb", "udeb", "rpm", "apk", "apks", "aab", "xapk", "ipa", "appimage",
                "snap", "flatpak", "run", "bin", "elf", "com", "scr", "dll", "so", "dylib", "jar",
                "wasm", "class", "dex", "xpi",
            ],
            BuiltIn::Other => &[],
        }
    }
}
