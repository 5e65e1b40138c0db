import AlexNetCore

/// An 8-bit RGB image, row-major, 3 bytes a pixel (what every decoder returns and every
/// augmentation reads).
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        require(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)")
        (self.width, self.height, self.pixels) = (width, height, pixels)
    }

    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }

    public var shorterSide: Int { min(width, height) }

    /// The `w`×`h` window at (`x`, `y`).
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> RGBImage {
        require(x >= 0 && y >= 0 && x + w <= width && y + h <= height, "crop \(w)×\(h)+\(x)+\(y) outside \(width)×\(height)")
        var out = [UInt8](repeating: 0, count: w * h * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for row in 0..<h {
                    let s = src.baseAddress! + ((y + row) * width + x) * 3
                    (dst.baseAddress! + row * w * 3).update(from: s, count: w * 3)
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }

    /// The central `size`×`size` window (offsets ⌊(W − size)/2⌋, ⌊(H − size)/2⌋, as the seed's `w//2 − 128`).
    public func centerCropped(_ size: Int) -> RGBImage {
        cropped(x: (width - size) / 2, y: (height - size) / 2, width: size, height: size)
    }
}

/// A file that could not be turned into an image, with the reason.
public struct ImageError: DescribedError, Sendable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { (self.path, self.reason) = (path, reason) }
    public var description: String { "\(path): \(reason)" }
}

/// One 8-bit channel, row-major: a Y, Cb or Cr plane of a JPEG (what the JPEG-to-JPEG path of
/// `preprocess` resizes without converting to RGB). Rows are `stride` bytes apart, of which the
/// first `width` are image (a decoder pads planes to whole blocks).
public struct Plane: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var stride: Int
    public var bytes: [UInt8]

    public init(width: Int, height: Int, stride: Int? = nil, bytes: [UInt8]) {
        let stride = stride ?? width
        require(stride >= width && bytes.count >= stride * height, "Plane: \(bytes.count) bytes for \(width)×\(height), stride \(stride)")
        (self.width, self.height, self.stride, self.bytes) = (width, height, stride, bytes)
    }
}
