//! A tensor is a storage buffer of f32 (or u32) elements, or of f16 weights, and a row-major
//! shape.

/// How a tensor's elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Elem {
    /// 4-byte elements: f32 activations and weights, u32 counters and indices.
    #[default]
    F32,
    /// IEEE half floats: weights stored with `--f16-weights` (`Gpu::upload_f16`). Kernels
    /// that read them declare `alias W = f32;` for their weight bindings and are compiled with
    /// `W = f16` when a bound tensor is f16 (`gpu::shaders::source`); compute stays f32.
    F16,
}

impl Elem {
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 => 2,
        }
    }
}

/// The first finite value of `data` that f16 cannot hold (magnitude over 65504, which would
/// round to infinity), as (index, value).
pub fn beyond_f16(data: &[f32]) -> Option<(usize, f32)> {
    data.iter()
        .position(|v| v.is_finite() && half::f16::from_f32(*v).is_infinite())
        .map(|i| (i, data[i]))
}

#[derive(Debug, Clone)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
    /// Byte offset of element 0 in `buffer`: 0, except for the windows an op binds when it
    /// splits work that is larger than one storage binding (`Tensor::window`).
    pub offset: u64,
    pub elem: Elem,
}

impl Tensor {
    /// A tensor of 4-byte elements.
    pub fn new(buffer: wgpu::Buffer, shape: Vec<usize>) -> Tensor {
        Tensor {
            buffer,
            shape,
            offset: 0,
            elem: Elem::F32,
        }
    }

    /// Bytes of its elements (without the buffer's padding).
    pub fn bytes(&self) -> u64 {
        (self.len() * self.elem.size()) as u64
    }

    /// Elements `first..first + product(shape)` of this tensor as a tensor of their own, bound
    /// by offset (the offset must meet the adapter's storage offset alignment; ops that split
    /// work choose their chunk boundaries for that).
    pub fn window(&self, first: usize, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        assert!(
            first + len <= self.len(),
            "window {first}+{len} past the end of {:?}",
            self.shape
        );
        Tensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            offset: self.offset + (first * self.elem.size()) as u64,
            elem: self.elem,
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same buffer seen with another shape of the same or fewer elements (used when an
    /// activation buffer is reused for a smaller tensor).
    pub fn view(&self, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        assert!(
            self.offset + (len * self.elem.size()) as u64 <= self.buffer.size(),
            "view {shape:?} does not fit the buffer of {:?}",
            self.shape
        );
        Tensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            offset: self.offset,
            elem: self.elem,
        }
    }

    /// The last dimension, e.g. channels of an [N, P, C] activation.
    pub fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }

    /// The product of all but the last dimension.
    pub fn rows(&self) -> usize {
        self.len() / self.cols().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::beyond_f16;

    #[test]
    fn beyond_f16_flags_only_finite_values_that_round_to_infinity() {
        // 65504 is f16's largest finite value; 65519.99 still rounds down to it, 65520 (the
        // midpoint to the next step) rounds to even, which is infinity.
        assert_eq!(beyond_f16(&[0.0, -65504.0, 65504.0, 65519.99]), None);
        assert_eq!(beyond_f16(&[1.0, 65520.0, 1e6]), Some((1, 65520.0)));
        assert_eq!(beyond_f16(&[-7e4]), Some((0, -7e4)));
        // Values that are not finite are the checkpoint check's business, not this one's.
        assert_eq!(beyond_f16(&[f32::INFINITY, f32::NAN, 1e-9]), None);
    }
}
