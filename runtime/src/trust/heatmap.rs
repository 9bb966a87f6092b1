//! PNG heatmaps of attributions over image-shaped inputs.
//!
//! One pixel per image pixel: the attributions of its channels summed (signed, or their
//! magnitudes), normalized by the largest magnitude in the picture, and coloured on a diverging
//! map — red for positive (toward the target), blue for negative, fading to the background at
//! zero. The background is white, or the image itself in grayscale (the mean of its channels,
//! stretched to the full range) when the input is given, so the colours show where on the
//! image the evidence is.
//!
//! Small images are scaled up by an integer factor (nearest neighbour, crisp pixels) until
//! their shorter side reaches [`HeatmapOptions::min_side`] (224 by default), as long as the
//! longer side stays within [`HeatmapOptions::max_side`] (1024); larger images keep their size.
//! The PNG is 8-bit RGB.

use maas_types::{Attribution, ImageLayout};
use serde::{Deserialize, Serialize};

use super::{LayoutIndex, TrustError, tensor_f32};
use crate::inference::RawTensor;

/// Largest heatmap, in pixels, before scaling (4096 × 4096).
pub const MAX_PIXELS: usize = 1 << 24;

/// Colour for positive attributions (ColorBrewer RdBu's red).
const POSITIVE: [f32; 3] = [178.0, 24.0, 43.0];
/// Colour for negative attributions (ColorBrewer RdBu's blue).
const NEGATIVE: [f32; 3] = [33.0, 102.0, 172.0];

/// How the channels of a pixel are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeatmapMode {
    /// The sum of the channels' attributions: red for evidence for the target, blue against.
    #[default]
    Signed,
    /// The sum of their magnitudes: red wherever the model looked, whatever the direction.
    Magnitude,
}

/// How a heatmap is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatmapOptions {
    /// Signed or magnitude; default signed.
    pub mode: HeatmapMode,
    /// The input's layout; default: the one the explanation used, else [`ImageLayout::detect`].
    pub layout: Option<ImageLayout>,
    /// Draw over the grayscale image when it is given; default true.
    pub overlay: bool,
    /// Scale small images up until the shorter side is at least this; default 224 (1: never).
    pub min_side: usize,
    /// ... but not past this on the longer side; default 1024.
    pub max_side: usize,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        Self { mode: HeatmapMode::Signed, layout: None, overlay: true, min_side: 224, max_side: 1024 }
    }
}

/// The integer upscaling factor for an image of `h × w` under `options`.
fn scale(h: usize, w: usize, options: &HeatmapOptions) -> usize {
    let short = h.min(w).max(1);
    let long = h.max(w).max(1);
    let wanted = options.min_side.div_ceil(short).max(1);
    wanted.min(options.max_side / long).max(1)
}

/// Renders `attribution` (of an image-shaped input) as a PNG, over `image` (the input, same
/// shape) when given and [`HeatmapOptions::overlay`] is set.
///
/// Fails with [`TrustError::InvalidRequest`] when the attribution is not image-shaped, the
/// image's shape differs, or the image is larger than [`MAX_PIXELS`].
pub fn render_png(
    attribution: &Attribution,
    image: Option<&RawTensor>,
    options: &HeatmapOptions,
) -> Result<Vec<u8>, TrustError> {
    let shape: &[usize] = &attribution.shape.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let not_image = || {
        TrustError::invalid(format!(
            "a heatmap needs an image-shaped input ([1,C,H,W] or [1,H,W,C]); input {:?} has shape {shape:?}",
            attribution.name
        ))
    };
    let layout = options.layout.or_else(|| ImageLayout::detect(shape)).ok_or_else(not_image)?;
    let dims @ (c, h, w) = layout.dims(shape).ok_or_else(not_image)?;
    let pixels = h.checked_mul(w).filter(|&p| p > 0 && p <= MAX_PIXELS).ok_or_else(|| {
        TrustError::invalid(format!("a heatmap of {h}×{w} pixels is empty or larger than {MAX_PIXELS} pixels"))
    })?;
    if c == 0 || attribution.data.len() != pixels * c {
        return Err(TrustError::invalid(format!(
            "attribution {:?} has {} values for shape {shape:?}",
            attribution.name,
            attribution.data.len()
        )));
    }

    // One value per pixel.
    let mut values = vec![0f32; pixels];
    for (p, value) in values.iter_mut().enumerate() {
        let (y, x) = (p / w, p % w);
        *value = (0..c)
            .map(|ch| attribution.data[layout.index(dims, ch, y, x)])
            .filter(|a| a.is_finite())
            .map(|a| if options.mode == HeatmapMode::Magnitude { a.abs() } else { a })
            .sum();
    }
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));

    // The background: white, or the image in grayscale.
    let background: Vec<f32> = match image.filter(|_| options.overlay) {
        Some(image) => {
            if image.shape != shape {
                return Err(TrustError::invalid(format!(
                    "the image has shape {:?}, its attributions {shape:?}",
                    image.shape
                )));
            }
            let data = tensor_f32(image)?;
            let gray: Vec<f32> = (0..pixels)
                .map(|p| {
                    let (y, x) = (p / w, p % w);
                    let sum: f32 = (0..c).map(|ch| data[layout.index(dims, ch, y, x)]).filter(|v| v.is_finite()).sum();
                    sum / c as f32
                })
                .collect();
            let (lo, hi) = gray.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let span = hi - lo;
            gray.iter().map(|&v| if span > 0.0 { 255.0 * (v - lo) / span } else { 128.0 }).collect()
        }
        None => vec![255.0; pixels],
    };

    // Colour every pixel, then scale up.
    let k = scale(h, w, options);
    let (out_w, out_h) = (w * k, h * k);
    let mut rgb = Vec::with_capacity(out_w * out_h * 3);
    let mut line = Vec::with_capacity(out_w * 3);
    for y in 0..h {
        line.clear();
        for x in 0..w {
            let p = y * w + x;
            let v = values[p];
            let t = if max > 0.0 { (v.abs() / max).min(1.0) } else { 0.0 };
            let colour = if v < 0.0 { NEGATIVE } else { POSITIVE };
            let bg = background[p];
            let pixel = colour.map(|c| (bg + (c - bg) * t).round().clamp(0.0, 255.0) as u8);
            for _ in 0..k {
                line.extend_from_slice(&pixel);
            }
        }
        for _ in 0..k {
            rgb.extend_from_slice(&line);
        }
    }

    let internal = |e: png::EncodingError| TrustError::Internal(format!("encoding the heatmap PNG: {e}"));
    let (width, height) = (u32::try_from(out_w), u32::try_from(out_h));
    let (Ok(width), Ok(height)) = (width, height) else {
        return Err(TrustError::invalid("the heatmap is too large"));
    };
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(internal)?;
    writer.write_image_data(&rgb).map_err(internal)?;
    writer.finish().map_err(internal)?;
    Ok(png_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::Datatype;
    use crate::inference::testing::f32_tensor;

    fn attribution(shape: &[usize], data: Vec<f32>) -> Attribution {
        Attribution {
            name: "image".into(),
            shape: shape.iter().map(|&d| d as u64).collect(),
            datatype: Datatype::Fp32,
            data,
        }
    }

    /// Decodes a PNG: (width, height, RGB bytes).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn renders_a_png_of_the_image_size() {
        // [1, 3, 2, 5]: 2 rows of 5 pixels, 3 channels.
        let mut data = vec![0f32; 30];
        data[0] = 1.0; // pixel (0,0), channel 0: positive
        data[10 + 7] = -0.5; // pixel (1,2), channel 1: negative
        let a = attribution(&[1, 3, 2, 5], data);
        let options = HeatmapOptions { min_side: 1, ..HeatmapOptions::default() };
        let (w, h, rgb) = decode(&render_png(&a, None, &options).unwrap());
        assert_eq!((w, h), (5, 2));
        let px = |y: usize, x: usize| &rgb[(y * 5 + x) * 3..(y * 5 + x) * 3 + 3];
        assert_eq!(px(0, 0), [178, 24, 43], "full positive is the positive colour");
        assert_eq!(px(0, 1), [255, 255, 255], "zero is the white background");
        let half = px(1, 2);
        assert!(half[2] > half[0] && half[0] < 255, "half negative is light blue: {half:?}");
    }

    #[test]
    fn small_images_are_scaled_up_and_nhwc_is_read() {
        let a = attribution(&[1, 5, 6, 1], (0..30).map(|i| i as f32 - 12.0).collect());
        let (w, h, _) = decode(&render_png(&a, None, &HeatmapOptions::default()).unwrap());
        // 5 × 6 (NHWC, one channel) × 45 → 225 × 270.
        assert_eq!((w, h), (6 * 45, 5 * 45));
        // The longer side caps the factor.
        let wide = attribution(&[1, 1, 2, 600], vec![1.0; 1200]);
        let (w, h, _) = decode(&render_png(&wide, None, &HeatmapOptions::default()).unwrap());
        assert_eq!((w, h), (600, 2));
    }

    #[test]
    fn overlays_the_grayscale_image() {
        let a = attribution(&[1, 1, 1, 3], vec![0.0, 0.0, 1.0]);
        let image = f32_tensor("image", &[1, 1, 1, 3], &[0.0, 1.0, 2.0]);
        let options = HeatmapOptions { min_side: 1, ..HeatmapOptions::default() };
        let (_, _, rgb) = decode(&render_png(&a, Some(&image), &options).unwrap());
        assert_eq!(&rgb[0..3], [0, 0, 0], "darkest pixel, no attribution: black");
        assert_eq!(&rgb[3..6], [128, 128, 128], "mid-gray");
        assert_eq!(&rgb[6..9], [178, 24, 43], "full attribution: the colour");
        let (_, _, plain) =
            decode(&render_png(&a, Some(&image), &HeatmapOptions { overlay: false, ..options.clone() }).unwrap());
        assert_eq!(&plain[0..3], [255, 255, 255]);
        let magnitude = HeatmapOptions { mode: HeatmapMode::Magnitude, ..options };
        let negative = attribution(&[1, 1, 1, 3], vec![0.0, 0.0, -1.0]);
        let (_, _, rgb) = decode(&render_png(&negative, None, &magnitude).unwrap());
        assert_eq!(&rgb[6..9], [178, 24, 43], "magnitude ignores the sign");
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        let flat = attribution(&[1, 100], vec![0.0; 100]);
        let err = render_png(&flat, None, &HeatmapOptions::default()).unwrap_err();
        assert!(matches!(err, TrustError::InvalidRequest(ref m) if m.contains("image-shaped")), "{err}");
        let short = attribution(&[1, 3, 4, 4], vec![0.0; 47]);
        assert!(render_png(&short, None, &HeatmapOptions::default()).is_err());
        let a = attribution(&[1, 1, 2, 2], vec![0.0; 4]);
        let other = f32_tensor("image", &[1, 1, 4, 1], &[0.0; 4]);
        assert!(render_png(&a, Some(&other), &HeatmapOptions::default()).is_err());
    }
}
