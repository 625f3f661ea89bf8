//! Barcodes in the camera frame: before the embedding, the till looks for an EAN-13, EAN-8,
//! UPC-A, Code-128 or QR code in the frame (rxing, a port of ZXing). A one-dimensional
//! code is read along rows (rxing's "try harder" adds the quarter turn), so when the frame
//! as it is gives nothing, the angle of its most bar-like region (the direction of its
//! image gradients, [`bar_angle`]) says how far to turn it for the bars to stand upright,
//! and it is read turned by that much (give or take a slant): a package held at any angle
//! reads, in at most three scans.

use image::{GrayImage, RgbImage, imageops};
use rxing::{BarcodeFormat, DecodeHints};
use std::collections::HashSet;

/// Longest side scanned, pixels: larger frames are scaled down first (a barcode a camera can
/// read stays readable, and the scan's time stays bounded).
pub const SCAN_SIDE_MAX: u32 = 1024;

/// Side of the square blocks whose gradients [`bar_angle`] measures, pixels.
const BLOCK: u32 = 12;
/// Least mean squared gradient of a block that may hold bars (flat areas do not), in
/// Scharr's units (16 times a plain difference).
const BLOCK_ENERGY_MIN: f32 = 400.0 * 256.0;
/// Least coherence (1: every gradient of the block along one direction) of a block of bars.
const BLOCK_COHERENCE_MIN: f32 = 0.85;
/// How far from upright the bars are turned, degrees (see [`scan`]).
const SLANT: f32 = 3.0;
/// Turns closer than this to a quarter turn are left to rxing, degrees.
const TURN_MIN: f32 = 8.0;

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

/// How far to turn `gray` (degrees, as [`turned`] takes them) for the bars of its most
/// bar-like area to stand upright: blocks whose gradients are strong and all along one
/// direction vote for that direction, weighted by their strength. `None` when no block
/// looks like bars.
fn bar_angle(gray: &GrayImage) -> Option<f32> {
    let (w, h) = gray.dimensions();
    let p = |x: u32, y: u32| f32::from(gray.get_pixel(x, y)[0]);
    // Votes in 2-degree bins of the gradient's direction, 0 to 180.
    let mut votes = [0.0_f32; 90];
    let mut by = 1;
    while by + BLOCK < h {
        let mut bx = 1;
        while bx + BLOCK < w {
            let (mut xx, mut yy, mut xy) = (0.0_f32, 0.0_f32, 0.0_f32);
            for y in by..by + BLOCK {
                for x in bx..bx + BLOCK {
                    // Scharr's operator: the 3x3 gradient closest to turning alike in
                    // every direction (plain differences lean towards the diagonals).
                    let gx = 3.0 * (p(x + 1, y - 1) - p(x - 1, y - 1))
                        + 10.0 * (p(x + 1, y) - p(x - 1, y))
                        + 3.0 * (p(x + 1, y + 1) - p(x - 1, y + 1));
                    let gy = 3.0 * (p(x - 1, y + 1) - p(x - 1, y - 1))
                        + 10.0 * (p(x, y + 1) - p(x, y - 1))
                        + 3.0 * (p(x + 1, y + 1) - p(x + 1, y - 1));
                    xx += gx * gx;
                    yy += gy * gy;
                    xy += gx * gy;
                }
            }
            let energy = xx + yy;
            let n = (BLOCK * BLOCK) as f32;
            if energy / n >= BLOCK_ENERGY_MIN {
                let coherence = ((xx - yy).powi(2) + 4.0 * xy * xy).sqrt() / energy;
                if coherence >= BLOCK_COHERENCE_MIN {
                    let theta = (0.5 * (2.0 * xy).atan2(xx - yy))
                        .to_degrees()
                        .rem_euclid(180.0);
                    votes[(theta / 2.0) as usize % 90] += energy * coherence;
                }
            }
            bx += BLOCK;
        }
        by += BLOCK;
    }
    // The strongest direction, smoothed over its neighbouring bins.
    let (bin, score) = (0..90)
        .map(|i| (i, votes[(i + 89) % 90] + votes[i] + votes[(i + 1) % 90]))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if score <= 0.0 {
        return None;
    }
    // Bars whose gradient points at `theta` (y down) stand upright once turned by -theta
    // (or by 180 degrees less: a one-dimensional code reads both ways), the smaller turn.
    let theta = bin as f32 * 2.0 + 1.0;
    Some(if theta > 90.0 { 180.0 - theta } else { -theta })
}

/// Reads one frame as it is.
fn read(g: GrayImage) -> Option<Code> {
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
    if let Some(code) = read(gray.clone()) {
        return Some(code);
    }
    let turn = bar_angle(&gray)?;
    // rxing has already tried the frame as it is and a quarter turn of it.
    let off = turn.rem_euclid(90.0);
    if !(TURN_MIN..=90.0 - TURN_MIN).contains(&off) {
        return None;
    }
    // Not quite upright: bars aligned with the pixel grid alias into the same wrong widths
    // on every row, while a slight slant gives each row another phase (the 40-degree test
    // photo read turned by 37, 41 or 43 degrees, not by 39 or 40).
    [SLANT, -SLANT]
        .iter()
        .find_map(|d| read(turned(&gray, turn + d)))
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
    fn the_bars_angle_turns_them_upright() {
        let bars = GrayImage::from_fn(160, 160, |x, _| {
            image::Luma(if (x / 4) % 2 == 0 { [20] } else { [230] })
        });
        for d in [30.0_f32, -50.0, 70.0] {
            let turn = bar_angle(&turned(&bars, d)).unwrap();
            // Back by d, or by d +- 180 (a one-dimensional code reads both ways).
            let off = (turn + d).rem_euclid(180.0);
            assert!(off.min(180.0 - off) <= 2.0, "{d}: {turn}");
        }
        assert_eq!(
            bar_angle(&GrayImage::from_pixel(64, 64, image::Luma([128]))),
            None
        );
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
