//! The request body before it is parsed: `Content-Encoding`.

use super::OipError;
use crate::Request;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use std::borrow::Cow;
use std::io::Read;

/// The header that gives the length of the JSON part of a body carrying binary tensor data (the
/// rest of the body is the tensors' bytes). Lower case, as the platform hands headers over;
/// [`Request::header`] ignores case anyway.
pub const INFERENCE_HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

/// The default limit of [`request_body`] on a decompressed body: 256 MiB. A function's memory
/// limit is the final bound; this one turns a decompression bomb into a `413` before it gets there.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 256 * 1024 * 1024;

/// The body of `req` with its `Content-Encoding` undone: borrowed as it is when the request has
/// no encoding (or `identity`), decompressed into a new buffer for `gzip` and `deflate`.
///
/// `tritonclient` compresses the whole body, binary tensor data included, so this runs before
/// [`InferRequest::from_body`](super::InferRequest::from_body) splits it. See
/// [`decode_content_encoding`] for the errors.
pub fn request_body(req: &Request, max_decompressed: u64) -> Result<Cow<'_, [u8]>, OipError> {
    decode_content_encoding(req.header("content-encoding"), &req.body, max_decompressed)
}

/// A content coding this module can undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

impl Coding {
    fn parse(name: &str) -> Result<Coding, OipError> {
        // Codings are case-insensitive (RFC 9110, section 8.4.1); `x-gzip` is gzip's old alias.
        let is = |coding: &str| name.eq_ignore_ascii_case(coding);
        if is("identity") {
            Ok(Coding::Identity)
        } else if is("gzip") || is("x-gzip") {
            Ok(Coding::Gzip)
        } else if is("deflate") {
            Ok(Coding::Deflate)
        } else {
            Err(OipError::new(format!(
                "unsupported Content-Encoding {name:?}: this function accepts gzip, deflate or identity"
            )))
        }
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// `body` decoded per the `Content-Encoding` header value `encoding` (`None`: as it is).
///
/// `encoding` lists codings in the order they were applied, comma-separated; they are undone
/// last first. `gzip` (alias `x-gzip`, concatenated members accepted) and `deflate` (the zlib
/// format, as RFC 9110 and `tritonclient` mean it; a raw deflate stream, as some clients send, is
/// accepted too) are decompressed, `identity` is nothing to undo.
///
/// # Errors
///
/// - `400 invalid_input`: an unknown coding (nothing is decompressed then), or a body that is not
///   valid data of its coding.
/// - `413 payload_too_large`: a body that decompresses to more than `max_decompressed` bytes.
pub fn decode_content_encoding<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    max_decompressed: u64,
) -> Result<Cow<'a, [u8]>, OipError> {
    let Some(encoding) = encoding else {
        return Ok(Cow::Borrowed(body));
    };
    // Every coding is checked before any is undone: an unknown one should not cost a decompression.
    let codings = encoding
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(Coding::parse)
        .collect::<Result<Vec<Coding>, OipError>>()?;
    let mut body = Cow::Borrowed(body);
    for coding in codings.into_iter().rev() {
        if coding != Coding::Identity {
            body = Cow::Owned(decompress(coding, &body, max_decompressed)?);
        }
    }
    Ok(body)
}

/// The most a deflate stream can expand: 258 bytes from one bit or so, 1032 to 1 in practice.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// `data` decompressed with `coding` (`gzip` or `deflate`), at most `max` bytes of it.
fn decompress(coding: Coding, data: &[u8], max: u64) -> Result<Vec<u8>, OipError> {
    // A good first guess at the size saves the buffer's doublings (and the memory they waste):
    // gzip's trailer holds the size modulo 2^32; a claim beyond what deflate can produce from
    // this much data, or beyond the limit, is not believed.
    let bound = (data.len() as u64).saturating_mul(MAX_DEFLATE_RATIO).saturating_add(64).min(max);
    let hint = match coding {
        Coding::Gzip if data.len() >= 18 => {
            let trailer: [u8; 4] = data[data.len() - 4..].try_into().unwrap_or_default();
            u64::from(u32::from_le_bytes(trailer)).min(bound)
        }
        _ => (data.len() as u64).saturating_mul(4).min(bound),
    };
    // Past `max` there is one byte more to read, to tell "exactly max" from "more".
    let limit = max.saturating_add(1);
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    let read = match coding {
        Coding::Gzip => MultiGzDecoder::new(data).take(limit).read_to_end(&mut out),
        Coding::Deflate if is_zlib_header(data) => ZlibDecoder::new(data).take(limit).read_to_end(&mut out),
        Coding::Deflate => DeflateDecoder::new(data).take(limit).read_to_end(&mut out),
        Coding::Identity => {
            out.extend_from_slice(data);
            Ok(data.len())
        }
    };
    let name = coding.name();
    read.map_err(|err| OipError::new(format!("cannot decompress the request body (Content-Encoding: {name}): {err}")))?;
    if out.len() as u64 > max {
        return Err(OipError::too_large(format!(
            "the request body (Content-Encoding: {name}) decompresses to more than {max} bytes, the most this \
             function accepts"
        )));
    }
    Ok(out)
}

/// Whether `data` starts with a zlib header (RFC 1950): deflate method, a window of at most
/// 32 KiB, and a check value that makes the first two bytes a multiple of 31.
fn is_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}
