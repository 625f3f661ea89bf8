//! Camera frames and uploaded photos: JPEG or PNG, decoded within limits, centre-cropped to
//! the model's aspect ratio, resized, and normalised into the model's NCHW input.

use crate::VisionError;
use crate::card::InputSpec;
use image::{ImageFormat, RgbImage};
use std::io::Cursor;

/// Largest upload accepted, bytes.
pub const MAX_BYTES: usize = 12 << 20;
/// Longest side accepted, pixels.
pub const MAX_SIDE: u32 = 8192;
/// Shortest side accepted, pixels.
pub const MIN_SIDE: u32 = 16;

/// Decodes a JPEG or PNG upload; anything else, empty, truncated, corrupt or out of bounds
/// is refused with the reason.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, VisionError> {
    if bytes.is_empty() {
        return Err(VisionError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(VisionError::TooLarge(bytes.len()));
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        _ => return Err(VisionError::NotAnImage),
    };
    // The JPEG decoder fills a cut-off scan with grey rather than failing; a frame cut off
    // in transit must not be recognised as whatever the grey looks like.
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        return Err(VisionError::Corrupt(
            "the JPEG is truncated (no end-of-image marker)".into(),
        ));
    }
    let reader = || image::ImageReader::with_format(Cursor::new(bytes), format);
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| VisionError::Corrupt(e.to_string()))?;
    if !(MIN_SIDE..=MAX_SIDE).contains(&w) || !(MIN_SIDE..=MAX_SIDE).contains(&h) {
        return Err(VisionError::BadSize(w, h));
    }
    let mut r = reader();
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 << 20);
    r.limits(limits);
    let img = r
        .decode()
        .map_err(|e| VisionError::Corrupt(e.to_string()))?;
    Ok(img.to_rgb8())
}

/// Whether a JPEG's end-of-image marker is near its end (cameras may pad a little after it).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

/// The model's input for `img`: the largest centred crop of the input's aspect ratio,
/// narrowed to the `crop` share (the card's) about its centre, resized (bilinear) and
/// normalised, channel-major.
pub fn tensor(img: &RgbImage, spec: &InputSpec, crop: f32) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let (tw, th) = (spec.width, spec.height);
    // Crop to tw:th.
    let (cw, ch) = if w as u64 * th as u64 > h as u64 * tw as u64 {
        ((h as u64 * tw as u64 / th as u64) as u32, h)
    } else {
        (w, (w as u64 * th as u64 / tw as u64) as u32)
    };
    let keep = crop.clamp(0.25, 1.0);
    let (cw, ch) = (
        ((cw as f32 * keep).round() as u32).clamp(1, cw),
        ((ch as f32 * keep).round() as u32).clamp(1, ch),
    );
    let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
    let crop = image::imageops::crop_imm(img, x0, y0, cw.max(1), ch.max(1)).to_image();
    let sized = if (cw, ch) == (tw, th) {
        crop
    } else {
        image::imageops::resize(&crop, tw, th, image::imageops::FilterType::Triangle)
    };
    let plane = (tw * th) as usize;
    let mut out = vec![0.0_f32; 3 * plane];
    for (i, p) in sized.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p[c]) - spec.mean[c]) / spec.std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn bad_uploads_are_refused_with_the_reason() {
        assert!(matches!(decode(&[]), Err(VisionError::Empty)));
        assert!(matches!(
            decode(b"GIF89a not supported"),
            Err(VisionError::NotAnImage)
        ));
        assert!(matches!(
            decode(b"plain text, not a picture"),
            Err(VisionError::NotAnImage)
        ));
        let good = png(64, 48);
        assert!(matches!(
            decode(&good[..good.len() / 2]),
            Err(VisionError::Corrupt(_))
        ));
        assert!(matches!(
            decode(&png(8, 8)),
            Err(VisionError::BadSize(8, 8))
        ));
        let mut jpeg = Vec::new();
        RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 7]))
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(decode(&jpeg).unwrap().dimensions(), (64, 48));
        assert!(matches!(
            decode(&jpeg[..jpeg.len() - 40]),
            Err(VisionError::Corrupt(m)) if m.contains("truncated")
        ));
        let huge = vec![0_u8; MAX_BYTES + 1];
        assert!(matches!(decode(&huge), Err(VisionError::TooLarge(_))));
        assert_eq!(decode(&good).unwrap().dimensions(), (64, 48));
    }

    #[test]
    fn frames_are_centre_cropped_resized_and_normalised() {
        let spec = InputSpec {
            name: "image".into(),
            layout: "NCHW".into(),
            height: 16,
            width: 16,
            channels: "RGB".into(),
            mean: [127.0; 3],
            std: [128.0; 3],
        };
        let img = RgbImage::from_fn(64, 32, |x, _| {
            image::Rgb([if (16..48).contains(&x) { 255 } else { 0 }, 0, 127])
        });
        let t = tensor(&img, &spec, 1.0);
        assert_eq!(t.len(), 3 * 16 * 16);
        // The centre 32x32 is all red: the crop dropped the black sides.
        assert!(
            t[..256].iter().all(|v| (*v - 1.0).abs() < 0.01),
            "{:?}",
            &t[..8]
        );
        assert!(
            t[256..512]
                .iter()
                .all(|v| (*v + 127.0 / 128.0).abs() < 0.01)
        );
        assert!(t[512..].iter().all(|v| v.abs() < 0.01));
        // A card's crop keeps the middle of that: half of it is the green centre square.
        let img = RgbImage::from_fn(64, 32, |x, y| {
            let centre = (24..40).contains(&x) && (8..24).contains(&y);
            image::Rgb([0, if centre { 255 } else { 0 }, 0])
        });
        let t = tensor(&img, &spec, 0.5);
        assert!(
            t[256..512].iter().all(|v| (*v - 1.0).abs() < 0.01),
            "{:?}",
            &t[256..264]
        );
    }
}
