//! Barcodes in the camera frame: before the embedding, the till looks for an EAN-13, EAN-8,
//! UPC-A, Code-128 or QR code in the frame (rxing, a port of ZXing). A one-dimensional
//! code is read along rows, so the frame is also tried turned by 30 and 60 degrees (rxing's
//! "try harder" adds the quarter turn of each): a package held at any angle reads.

use image::{GrayImage, RgbImage, imageops};
use rxing::{BarcodeFormat, DecodeHints};
use std::collections::HashSet;

/// Longest side scanned, pixels: larger frames are scaled down first (a barcode a camera can
/// read stays readable, and the scan's time stays bounded).
pub const SCAN_SIDE_MAX: u32 = 1024;

/// Turns tried, degrees (each also tried a quarter turn further by rxing): a row crosses
/// every bar of a code turned up to ~15 degrees, so 22.5-degree steps leave no gap.
const TURNS: [f32; 4] = [0.0, 22.5, 45.0, 67.5];

/// One decoded barcode.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Code {
    /// Its symbology: `ean13`, `ean8`, `upca`, `code128` or `qr`. (UPC-E is left out: in
    /// turned frames it misread the middle of EAN-13 codes.)
    pub format: String,
    /// What it encodes.
    pub text: String,
}

fn formats() -> HashSet<BarcodeFormat> {
    HashSet::from([
        BarcodeFormat::EAN_13,
        BarcodeFormat::EAN_8,
        BarcodeFormat::UPC_A,
        BarcodeFormat::CODE_128,
        BarcodeFormat::QR_CODE,
    ])
}

fn name(f: &BarcodeFormat) -> &'static str {
    match f {
        BarcodeFormat::EAN_13 => "ean13",
        BarcodeFormat::EAN_8 => "ean8",
        BarcodeFormat::UPC_A => "upca",
        BarcodeFormat::CODE_128 => "code128",
        BarcodeFormat::QR_CODE => "qr",
        _ => "other",
    }
}

/// `img` turned by `degrees` about its centre onto a canvas large enough to hold it, the
/// corners filled with white (a quiet zone, never a bar).
fn turned(img: &GrayImage, degrees: f32) -> GrayImage {
    if degrees == 0.0 {
        return img.clone();
    }
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (s, c) = degrees.to_radians().sin_cos();
    let ow = (w * c.abs() + h * s.abs()).round() as u32;
    let oh = (w * s.abs() + h * c.abs()).round() as u32;
    let (cx, cy, ox, oy) = (w / 2.0, h / 2.0, ow as f32 / 2.0, oh as f32 / 2.0);
    GrayImage::from_fn(ow, oh, |x, y| {
        // Where the output pixel comes from in the input (the inverse turn).
        let (dx, dy) = (x as f32 - ox, y as f32 - oy);
        let sx = c * dx + s * dy + cx;
        let sy = -s * dx + c * dy + cy;
        if sx < 0.0 || sy < 0.0 || sx > w - 1.0 || sy > h - 1.0 {
            return image::Luma([255]);
        }
        image::Luma([bicubic(img, sx, sy)])
    })
}

/// Catmull-Rom interpolation of `img` at (`x`, `y`): sharper than bilinear, which blurs
/// bars two pixels wide into grey when the frame is turned.
fn bicubic(img: &GrayImage, x: f32, y: f32) -> u8 {
    fn weight(t: f32) -> f32 {
        let t = t.abs();
        if t < 1.0 {
            1.5 * t * t * t - 2.5 * t * t + 1.0
        } else if t < 2.0 {
            -0.5 * t * t * t + 2.5 * t * t - 4.0 * t + 2.0
        } else {
            0.0
        }
    }
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (w, h) = (i64::from(img.width()) - 1, i64::from(img.height()) - 1);
    let mut sum = 0.0;
    for j in -1..=2 {
        let wy = weight(y - (y0 + j) as f32);
        for i in -1..=2 {
            let wx = weight(x - (x0 + i) as f32);
            let p = img.get_pixel((x0 + i).clamp(0, w) as u32, (y0 + j).clamp(0, h) as u32);
            sum += wx * wy * f32::from(p[0]);
        }
    }
    sum.round().clamp(0.0, 255.0) as u8
}

/// The first barcode found in the frame, if any.
pub fn scan(img: &RgbImage) -> Option<Code> {
    let mut gray = imageops::grayscale(img);
    let side = gray.width().max(gray.height());
    if side > SCAN_SIDE_MAX {
        let k = SCAN_SIDE_MAX as f32 / side as f32;
        gray = imageops::resize(
            &gray,
            ((gray.width() as f32 * k) as u32).max(1),
            ((gray.height() as f32 * k) as u32).max(1),
            imageops::FilterType::Triangle,
        );
    }
    TURNS.iter().find_map(|&t| {
        let g = turned(&gray, t);
        let mut hints = DecodeHints {
            PossibleFormats: Some(formats()),
            TryHarder: Some(true),
            ..DecodeHints::default()
        };
        let (w, h) = g.dimensions();
        rxing::helpers::detect_in_luma_with_hints(g.into_raw(), w, h, None, &mut hints)
            .ok()
            .map(|r| Code {
                format: name(r.getBarcodeFormat()).to_string(),
                text: r.getText().to_string(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_without_a_barcode_reads_nothing() {
        let img = RgbImage::from_fn(200, 150, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        assert_eq!(scan(&img), None);
    }

    #[test]
    fn turning_keeps_the_picture_and_whitens_the_corners() {
        let img = GrayImage::from_fn(40, 20, |x, _| image::Luma(if x < 20 { [0] } else { [200] }));
        let t = turned(&img, 90.0);
        assert_eq!((t.width(), t.height()), (20, 40));
        assert_eq!(turned(&img, 0.0), img);
        let d = turned(&img, 45.0);
        assert_eq!(d.get_pixel(0, 0)[0], 255);
    }
}
