//! What a file is, judged from its bytes, never from the name or the Content-Type the client
//! sent: the allow-list of types ([`Kind`], sniffed by the `infer` crate from the first bytes),
//! the pixel size read from the image's header (the `imagesize` crate: no decoding, so a
//! decompression bomb costs nothing to measure), and metadata stripping without re-encoding
//! (the `img-parts` crate).
//!
//! Pure functions over bytes. Must not touch: I/O.

use bytes::Bytes;
use img_parts::jpeg::{markers, Jpeg};
use img_parts::png::Png;
use img_parts::webp::WebP;
use img_parts::ImageEXIF;

/// Bytes enough to sniff every allowed type (`infer` reads at most a few dozen).
pub(crate) const SNIFF_BYTES: usize = 512;

/// The types the chat takes. No SVG (a script container), no HTML, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Jpeg,
    Png,
    Webp,
    Gif,
    Pdf,
}

impl Kind {
    /// The MIME type stored with the message and sent as Content-Type (the database's check
    /// constraint of sql/0220 lists the same five).
    pub(crate) fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Webp => "image/webp",
            Kind::Gif => "image/gif",
            Kind::Pdf => "application/pdf",
        }
    }

    pub(crate) fn from_mime(mime: &str) -> Option<Kind> {
        [Kind::Jpeg, Kind::Png, Kind::Webp, Kind::Gif, Kind::Pdf]
            .into_iter()
            .find(|k| k.mime() == mime)
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Webp => "webp",
            Kind::Gif => "gif",
            Kind::Pdf => "pdf",
        }
    }

    pub(crate) fn is_image(self) -> bool {
        !matches!(self, Kind::Pdf)
    }
}

/// The allowed type the first bytes of a file show, or None (HTML, SVG, a zip, an executable,
/// text renamed to .jpg, ...).
pub(crate) fn sniff(head: &[u8]) -> Option<Kind> {
    let found = infer::get(head)?;
    Kind::from_mime(found.mime_type())
}

/// Why an image is refused or cannot be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InspectError {
    #[error("the image's header cannot be read")]
    Unreadable,
    #[error("the image is {width} x {height} pixels; at most {max} pixels")]
    TooManyPixels { width: u64, height: u64, max: u64 },
}

/// Width and height from the image's header, refused beyond `max_pixels` (width x height).
pub(crate) fn dimensions(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), InspectError> {
    let size = imagesize::blob_size(bytes).map_err(|_| InspectError::Unreadable)?;
    let (width, height) = (size.width as u64, size.height as u64);
    if width == 0 || height == 0 {
        return Err(InspectError::Unreadable);
    }
    if width.saturating_mul(height) > max_pixels {
        return Err(InspectError::TooManyPixels {
            width,
            height,
            max: max_pixels,
        });
    }
    // Within the pixel limit both fit in u32 (the database keeps them at most 1,000,000).
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w <= 1_000_000 && h <= 1_000_000 => Ok((w, h)),
        _ => Err(InspectError::TooManyPixels {
            width,
            height,
            max: max_pixels,
        }),
    }
}

/// The image without its metadata (EXIF with its GPS position, XMP, text chunks, comments),
/// pixels untouched: the containers are rewritten, the compressed data is copied. The colour
/// profile (ICC) stays, so colours do not change. GIF carries no EXIF and is returned as is.
pub(crate) fn strip_metadata(kind: Kind, bytes: Bytes) -> Result<Bytes, InspectError> {
    match kind {
        Kind::Jpeg => {
            let mut jpeg = Jpeg::from_bytes(bytes).map_err(|_| InspectError::Unreadable)?;
            jpeg.set_exif(None);
            // APP1 also holds XMP (with its own GPS fields); APP3 to APP13 and APP15 are
            // vendor data; comments are free text. Kept: APP0 (JFIF), APP2 (the ICC profile),
            // APP14 (Adobe: how to read the colour channels).
            jpeg.segments_mut().retain(|s| {
                let m = s.marker();
                let app = (markers::APP0..=markers::APP15).contains(&m);
                let kept_app = matches!(m, markers::APP0 | markers::APP2 | markers::APP14);
                (!app || kept_app) && m != markers::COM
            });
            Ok(jpeg.encoder().bytes())
        }
        Kind::Png => {
            let mut png = Png::from_bytes(bytes).map_err(|_| InspectError::Unreadable)?;
            png.set_exif(None);
            // Text chunks (tEXt, zTXt, iTXt: XMP lives in iTXt) and the modification time.
            png.chunks_mut()
                .retain(|c| !matches!(&c.kind(), b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" | b"eXIf"));
            Ok(png.encoder().bytes())
        }
        Kind::Webp => {
            let mut webp = WebP::from_bytes(bytes).map_err(|_| InspectError::Unreadable)?;
            webp.remove_chunks_by_id(*b"XMP ");
            // Last: set_exif recomputes the VP8X header's flags from the chunks left.
            webp.set_exif(None);
            Ok(webp.encoder().bytes())
        }
        Kind::Gif | Kind::Pdf => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1x1 PNG with a tEXt chunk ("GPS" = "somewhere").
    pub(crate) fn png_with_text() -> Vec<u8> {
        fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
            let mut out = (data.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let mut crc_input = kind.to_vec();
            crc_input.extend_from_slice(data);
            out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
            out
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let ihdr = [0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0];
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(b"tEXt", b"GPS\0somewhere"));
        // One grey pixel, zlib-compressed (stored block).
        png.extend(chunk(
            b"IDAT",
            &[
                0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81,
            ],
        ));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn types_are_sniffed_from_bytes_and_only_the_allowed_ones_pass() {
        assert_eq!(sniff(&png_with_text()), Some(Kind::Png));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), Some(Kind::Jpeg));
        assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00"), Some(Kind::Gif));
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), Some(Kind::Pdf));
        assert_eq!(sniff(b"RIFF\x1a\x00\x00\x00WEBPVP8L"), Some(Kind::Webp));
        // HTML (whatever its name), SVG, a zip, plain text: refused.
        assert_eq!(
            sniff(b"<!DOCTYPE html><html><script>alert(1)</script>"),
            None
        );
        assert_eq!(
            sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"),
            None
        );
        assert_eq!(sniff(b"PK\x03\x04\x14\x00\x00\x00"), None);
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn dimensions_come_from_the_header_and_the_pixel_limit_holds() {
        let png = png_with_text();
        assert_eq!(dimensions(&png, 40_000_000), Ok((1, 1)));
        // A header claiming 100,000 x 100,000 pixels: refused without decoding anything.
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            dimensions(&bomb, 40_000_000),
            Err(InspectError::TooManyPixels { .. })
        ));
        assert_eq!(dimensions(b"GIF", 10), Err(InspectError::Unreadable));
    }

    #[test]
    fn metadata_is_stripped_and_the_pixels_kept() {
        let png = png_with_text();
        assert!(png.windows(9).any(|w| w == b"somewhere"));
        let stripped = strip_metadata(Kind::Png, Bytes::from(png.clone())).expect("strip");
        assert!(!stripped.windows(9).any(|w| w == b"somewhere"));
        assert!(stripped.windows(4).any(|w| w == b"IDAT"));
        assert_eq!(sniff(&stripped), Some(Kind::Png));
        assert_eq!(dimensions(&stripped, 10), Ok((1, 1)));
        assert!(strip_metadata(Kind::Jpeg, Bytes::from_static(b"not a jpeg")).is_err());
    }
}
