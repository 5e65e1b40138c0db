import AlexNetCore
import CPNG
import CTurboJPEG
import Foundation

/// What an image file may claim before it is refused: hostile or broken files (a 4.6 MB PNG of
/// 40000×40000 pixels, a JPEG header of 65500×65500, a 20 GB file named .jpg) must fail alone,
/// with a message, instead of taking the machine's memory. The pixel limits are Pillow's
/// (`PIL.Image.MAX_IMAGE_PIXELS` and its decompression-bomb rule), checked on the dimensions in
/// the JPEG header or PNG IHDR before any pixel is allocated.
public struct ImageLimits: Sendable, Equatable {
    /// Above this many pixels an image is decoded but noted (Pillow's DecompressionBombWarning):
    /// the codec records a warning that the caller lists (dataset-info prints it as a `note:`).
    public var warnPixels: Int
    /// Above this many pixels an image is refused with an error (Pillow's DecompressionBombError,
    /// raised above 2 × MAX_IMAGE_PIXELS). At this cap width × height × 4 (CMYK) is below 2³¹, so
    /// no pixel count or byte count overflows 32 bits in C or Swift.
    public var maxPixels: Int
    /// Larger files are refused before they are read (the largest ImageNet JPEG is 15 MB).
    public var maxFileBytes: Int

    public init(warnPixels: Int = Self.pillowMaxImagePixels, maxPixels: Int = 2 * Self.pillowMaxImagePixels,
                maxFileBytes: Int = 1 << 30) {
        (self.warnPixels, self.maxPixels, self.maxFileBytes) = (warnPixels, maxPixels, maxFileBytes)
    }

    /// `PIL.Image.MAX_IMAGE_PIXELS`: 1024 × 1024 × 1024 // 4 // 3.
    public static let pillowMaxImagePixels = 89_478_485
    public static let standard = ImageLimits()
}

/// Decodes JPEG (baseline, progressive, grayscale, CMYK/YCCK) and PNG (8- and 16-bit, gray,
/// palette; alpha and tRNS dropped) to 8-bit RGB, and encodes JPEG and PNG (RGB or gray).
/// Files and images beyond `limits` are refused (see `ImageLimits`).
/// One codec per thread: TurboJPEG handles must not be shared.
public final class ImageCodec {
    private let decompressor: tjhandle
    private let compressor: tjhandle
    public let limits: ImageLimits
    /// The last file read, kept to be reused.
    private var fileBuffer: [UInt8] = []
    /// DCT scaling factors allowed (num/denom ≤ 1), largest reduction first.
    private let scalings: [(num: Int, denom: Int)]
    /// Images decoded although above `limits.warnPixels`, since the last `takeWarnings()`.
    private var warnings: [ImageError] = []

    public init(limits: ImageLimits = .standard) {
        self.limits = limits
        guard let d = tjInitDecompress(), let c = tjInitCompress() else { fatalError("TurboJPEG: cannot create a handle") }
        (decompressor, compressor) = (d, c)
        var n: Int32 = 0
        let factors = tjGetScalingFactors(&n)
        scalings = (0..<Int(n)).map { (Int(factors![$0].num), Int(factors![$0].denom)) }
            .filter { $0.num < $0.denom }.sorted { $0.num * $1.denom < $1.num * $0.denom }
    }

    deinit {
        tjDestroy(decompressor)
        tjDestroy(compressor)
    }

    /// The warnings recorded since the last call (one per image decoded above
    /// `limits.warnPixels`, naming the file and its size), and forgets them.
    public func takeWarnings() -> [ImageError] {
        defer { warnings = [] }
        return warnings
    }

    /// Refuses a header's dimensions when empty or above `limits.maxPixels` (before anything is
    /// allocated for them); those above `limits.warnPixels` are noted once decoded (`noteIfLarge`).
    private func checkDimensions(_ w: Int, _ h: Int, path: String, kind: String) throws {
        guard w > 0, h > 0 else { throw ImageError(path: path, reason: "\(kind) has no pixels (\(w)×\(h))") }
        let (pixels, overflow) = w.multipliedReportingOverflow(by: h)
        guard !overflow, pixels <= limits.maxPixels else {
            throw ImageError(path: path, reason: "\(kind) of \(w)×\(h) pixels is more than the \(limits.maxPixels) allowed "
                             + "(a decompression bomb; Pillow refuses it too)")
        }
    }

    private func noteIfLarge(_ w: Int, _ h: Int, path: String) {
        if w * h > limits.warnPixels {
            warnings.append(ImageError(path: path, reason: "\(w)×\(h) = \(w * h) pixels, more than Pillow's MAX_IMAGE_PIXELS "
                                       + "(\(limits.warnPixels)): decoded, but it may be a decompression bomb"))
        }
    }

    /// An image decoded at a reduced scale: `image` covers the source's `sourceWidth`×`sourceHeight`
    /// pixels at `scale` (1 when not reduced).
    public struct Decoded {
        public var image: RGBImage
        public var sourceWidth: Int
        public var sourceHeight: Int
        public var scale: Double

        /// Shorter side to `size` and optional central crop, with the geometry of the full-size
        /// source (so DCT scaling changes pixels only, never the output size or the crop window).
        public func resizedShorterSide(to size: Int, crop: Bool) -> RGBImage {
            image.resizedShorterSide(to: size, crop: crop, sourceWidth: sourceWidth, sourceHeight: sourceHeight, scale: scale)
        }
    }

    /// Reads and decodes a file at full size.
    public func decode(file path: String) throws -> RGBImage {
        try decode(file: path, minimumSize: nil).image
    }

    /// Reads a file (into the reused buffer) and decodes it; `minimumSize` as in `decode(_:path:…)`.
    public func decode(file path: String, minimumSize: Int?, oversampling: Int = 2) throws -> Decoded {
        let n = try readFile(path)
        return try fileBuffer.withUnsafeBytes {
            try decode(UnsafeRawBufferPointer(rebasing: $0[0..<n]), path: path, minimumSize: minimumSize, oversampling: oversampling)
        }
    }

    /// The image formats read, by their first bytes.
    private enum Signature {
        case jpeg, png

        init?(_ head: UnsafeRawBufferPointer) {
            if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF {
                self = .jpeg
            } else if head.count >= 8, head.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
                self = .png
            } else {
                return nil
            }
        }

        static func refusal(_ head: UnsafeRawBufferPointer, path: String) -> ImageError {
            let hex = head.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
            return ImageError(path: path, reason: "not a JPEG or PNG image (starts with \(hex))")
        }
    }

    /// Reads a file into this codec's reused buffer (one codec per thread, so one buffer per
    /// thread: no allocation per image); the byte count. The first bytes are read and checked
    /// first, and the size against `limits.maxFileBytes`, so a huge file that is not an image
    /// (or is too big to be one) is refused without reading it.
    private func readFile(_ path: String) throws -> Int {
        func failure(_ what: String) -> ImageError { ImageError(path: path, reason: "\(what) (\(String(cString: strerror(errno))))") }
        // Non-blocking so that a FIFO named .jpg is refused below instead of waiting for a writer.
        let fd = FileIO.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("cannot stat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ImageError(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw ImageError(path: path, reason: "empty file") }
        var head = [UInt8](repeating: 0, count: 8)
        var got = 0
        while got < head.count {
            let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, $0.count - got, off_t(got)) }
            if n < 0 { if errno == EINTR { continue }; throw failure("cannot read") }
            if n == 0 { break }
            got += n
        }
        try head.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<got])
            if Signature(bytes) == nil { throw Signature.refusal(bytes, path: path) }
        }
        guard size <= limits.maxFileBytes else {
            throw ImageError(path: path, reason: "file of \(size) bytes is larger than the \(limits.maxFileBytes) bytes an image may have")
        }
        if fileBuffer.count < size { fileBuffer = [UInt8](repeating: 0, count: size) }
        var done = 0
        try fileBuffer.withUnsafeMutableBytes { raw in
            while done < size {
                let n = read(fd, raw.baseAddress! + done, size - done)
                if n < 0 { if errno == EINTR { continue }; throw failure("cannot read") }
                if n == 0 { break }
                done += n
            }
        }
        return done
    }

    /// Decodes JPEG or PNG bytes. With `minimumSize`, a JPEG decodes with libjpeg-turbo's DCT
    /// scaling (a factor M/8: the largest reduction whose shorter side stays ≥ minimumSize·oversampling),
    /// so big photos decode fast and the antialiased resize that follows still has margin.
    public func decode(_ bytes: UnsafeRawBufferPointer, path: String, minimumSize: Int? = nil, oversampling: Int = 2) throws -> Decoded {
        guard !bytes.isEmpty else { throw ImageError(path: path, reason: "empty file") }
        let decoded: Decoded
        switch Signature(bytes) {
        case .jpeg:
            decoded = try decodeJPEG(bytes, path: path, minimumSize: minimumSize, oversampling: oversampling)
        case .png:
            let image = try decodePNG(bytes, path: path)
            decoded = Decoded(image: image, sourceWidth: image.width, sourceHeight: image.height, scale: 1)
        case nil:
            throw Signature.refusal(bytes, path: path)
        }
        noteIfLarge(decoded.sourceWidth, decoded.sourceHeight, path: path)
        return decoded
    }

    private func jpegError(_ handle: tjhandle) -> String { String(cString: tjGetErrorStr2(handle)) }

    private func decodeJPEG(_ bytes: UnsafeRawBufferPointer, path: String, minimumSize: Int?, oversampling: Int) throws -> Decoded {
        let src = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(decompressor, src, UInt(bytes.count), &w, &h, &subsampling, &colorspace) == 0 else {
            throw ImageError(path: path, reason: "bad JPEG header (\(jpegError(decompressor)))")
        }
        try checkDimensions(Int(w), Int(h), path: path, kind: "JPEG")
        let (scaledW, scaledH, scale) = scaledSize(Int(w), Int(h), minimumSize: minimumSize, oversampling: oversampling)
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let channels = cmyk ? 4 : 3
        var status: Int32 = 0
        // Every byte is written by the decoder, so the buffer starts uninitialised.
        let raw = [UInt8](unsafeUninitializedCapacity: scaledW * scaledH * channels) { dst, count in
            status = tjDecompress2(decompressor, src, UInt(bytes.count), dst.baseAddress, Int32(scaledW), 0, Int32(scaledH),
                                   cmyk ? Int32(TJPF_CMYK.rawValue) : Int32(TJPF_RGB.rawValue),
                                   0)   // accurate IDCT and fancy upsampling, as Pillow: the fast ones broke the quality bound
            count = scaledW * scaledH * channels
        }
        if status != 0, let message = decodingFailure() {
            throw ImageError(path: path, reason: message.contains("Premature end") ? "truncated JPEG (\(message))" : "cannot decode JPEG (\(message))")
        }
        let rgb = cmyk ? Self.cmykToRGB(raw, inverted: Self.hasAdobeMarker(bytes)) : raw
        return Decoded(image: RGBImage(width: scaledW, height: scaledH, pixels: rgb), sourceWidth: Int(w), sourceHeight: Int(h), scale: scale)
    }

    /// After a decompression that did not return 0: the message when it failed, nil when it only
    /// warned. Warnings leave a usable image (e.g. "extraneous bytes before marker", common in
    /// ImageNet); a premature end means missing pixels: refused, as Pillow does.
    private func decodingFailure() -> String? {
        let message = jpegError(decompressor)
        return tjGetErrorCode(decompressor) == Int32(TJERR_FATAL.rawValue) || message.contains("Premature end") ? message : nil
    }

    /// DCT-domain scaling: the largest reduction that keeps the shorter side ≥ minimumSize·oversampling
    /// (none without `minimumSize`). The decoded size, as libjpeg-turbo rounds it, and the factor.
    private func scaledSize(_ w: Int, _ h: Int, minimumSize: Int?, oversampling: Int) -> (Int, Int, Double) {
        guard let minimumSize else { return (w, h, 1) }
        for f in scalings {
            let sw = (w * f.num + f.denom - 1) / f.denom, sh = (h * f.num + f.denom - 1) / f.denom
            if min(sw, sh) >= minimumSize * oversampling { return (sw, sh, Double(f.num) / Double(f.denom)) }
        }
        return (w, h, 1)
    }

    /// A JPEG's own Y'CbCr planes, as stored (no chroma upsampling, no colour conversion), at a
    /// reduced `scale` when DCT scaling applied. `planes` is [Y] for a grayscale JPEG, else
    /// [Y, Cb, Cr]; chroma planes are subsampled by `chromaStep` (2, 2 for 4:2:0).
    public struct DecodedPlanes {
        public var planes: [Plane]
        public var chromaStep: (x: Int, y: Int)
        public var sourceWidth: Int
        public var sourceHeight: Int
        public var scale: Double
    }

    /// What `decode(file:minimumSize:preferPlanes:)` gives.
    public enum DecodedPixels {
        case planes(DecodedPlanes)
        case rgb(Decoded)
    }

    /// Reads a file once and decodes it: to its planes when `preferPlanes` and that path applies
    /// (see `decodePlanes`), else to RGB, which also names any error.
    public func decode(file path: String, minimumSize: Int?, preferPlanes: Bool) throws -> DecodedPixels {
        let n = try readFile(path)
        return try fileBuffer.withUnsafeBytes { all in
            let bytes = UnsafeRawBufferPointer(rebasing: all[0..<n])
            if preferPlanes, let planes = decodePlanes(bytes, minimumSize: minimumSize) {
                noteIfLarge(planes.sourceWidth, planes.sourceHeight, path: path)
                return .planes(planes)
            }
            return .rgb(try decode(bytes, path: path, minimumSize: minimumSize))
        }
    }

    /// Reads a file and decodes it to planes; nil where `decodePlanes(_:minimumSize:)` gives nil.
    public func decodePlanes(file path: String, minimumSize: Int?, oversampling: Int = 2) throws -> DecodedPlanes? {
        let n = try readFile(path)
        return fileBuffer.withUnsafeBytes { decodePlanes(UnsafeRawBufferPointer(rebasing: $0[0..<n]), minimumSize: minimumSize, oversampling: oversampling) }
    }

    /// Decodes JPEG bytes to planes, or returns nil when that path does not apply: not a JPEG,
    /// CMYK/YCCK, a subsampling TurboJPEG cannot express, more pixels than `limits.maxPixels`, or
    /// any decoding error (the RGB path then gives the error its proper message).
    public func decodePlanes(_ bytes: UnsafeRawBufferPointer, minimumSize: Int?, oversampling: Int = 2) -> DecodedPlanes? {
        let n = bytes.count
        guard n >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF else { return nil }
        let src = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(decompressor, src, UInt(n), &w, &h, &subsampling, &colorspace) == 0, w > 0, h > 0,
              colorspace == Int32(TJCS_YCbCr.rawValue) || colorspace == Int32(TJCS_GRAY.rawValue),
              (0..<Int32(TJ_NUMSAMP)).contains(subsampling),
              (try? checkDimensions(Int(w), Int(h), path: "", kind: "JPEG")) != nil else { return nil }
        let (scaledW, scaledH, scale) = scaledSize(Int(w), Int(h), minimumSize: minimumSize, oversampling: oversampling)
        let gray = subsampling == Int32(TJSAMP_GRAY.rawValue)
        // Plane sizes as TurboJPEG pads them: to whole chroma samples.
        let sizes = (0..<3).map { (Int(tjPlaneWidth(Int32($0), Int32(scaledW), subsampling)),
                                   Int(tjPlaneHeight(Int32($0), Int32(scaledH), subsampling))) }
        // Every byte of every plane is written by the decoder, so they start uninitialised.
        func uninitialised(_ i: Int) -> [UInt8] {
            gray && i > 0 ? [] : [UInt8](unsafeUninitializedCapacity: sizes[i].0 * sizes[i].1) { _, c in c = sizes[i].0 * sizes[i].1 }
        }
        var (y, cb, cr) = (uninitialised(0), uninitialised(1), uninitialised(2))
        var status: Int32 = 0
        y.withUnsafeMutableBufferPointer { py in
            cb.withUnsafeMutableBufferPointer { pcb in
                cr.withUnsafeMutableBufferPointer { pcr in
                    var pointers = [py.baseAddress, pcb.baseAddress, pcr.baseAddress]
                    var strides = sizes.map { Int32($0.0) }
                    status = tjDecompressToYUVPlanes(decompressor, src, UInt(n), &pointers, Int32(scaledW), &strides, Int32(scaledH), 0)
                }
            }
        }
        // Errors go to the RGB path to be named.
        if status != 0 && decodingFailure() != nil { return nil }
        let step = gray ? (1, 1) : (Int(tjPlaneWidth(0, 16, subsampling) / tjPlaneWidth(1, 16, subsampling)),
                                    Int(tjPlaneHeight(0, 16, subsampling) / tjPlaneHeight(1, 16, subsampling)))
        // The Y plane's real extent is the image's; the padding past it is not image.
        var result = [Plane(width: scaledW, height: scaledH, stride: sizes[0].0, bytes: y)]
        if !gray { result += [Plane(width: sizes[1].0, height: sizes[1].1, bytes: cb), Plane(width: sizes[2].0, height: sizes[2].1, bytes: cr)] }
        return DecodedPlanes(planes: result, chromaStep: step, sourceWidth: Int(w), sourceHeight: Int(h), scale: scale)
    }

    /// Photoshop's CMYK JPEGs (those with an Adobe APP14 marker) store inverted ink values.
    static func hasAdobeMarker(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 2
        while i + 4 <= bytes.count, bytes[i] == 0xFF {
            let marker = bytes[i + 1]
            if marker == 0xDA || marker == 0xD9 { break }   // start of scan: no more header markers
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            if marker == 0xEE, i + 9 <= bytes.count, Array(bytes[(i + 4)..<(i + 9)]) == Array("Adobe".utf8) { return true }
            i += 2 + length
        }
        return false
    }

    /// Pillow's conversion: R = (255 − C)(255 − K)/255 on non-inverted ink values.
    static func cmykToRGB(_ cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        let n = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for p in 0..<n {
            var c = Int(cmyk[4 * p]), m = Int(cmyk[4 * p + 1]), y = Int(cmyk[4 * p + 2]), k = Int(cmyk[4 * p + 3])
            if inverted { (c, m, y, k) = (255 - c, 255 - m, 255 - y, 255 - k) }
            let nk = 255 - k
            func channel(_ v: Int) -> UInt8 {
                let t = v * nk + 128                       // MULDIV255(v, nk)
                return UInt8(clamping: nk - ((t >> 8) + t) >> 8)
            }
            rgb[3 * p] = channel(c); rgb[3 * p + 1] = channel(m); rgb[3 * p + 2] = channel(y)
        }
        return rgb
    }

    private func decodePNG(_ bytes: UnsafeRawBufferPointer, path: String) throws -> RGBImage {
        // IHDR is the first chunk (PNG spec 5.6; libpng refuses any other order): its dimensions
        // are checked here for the message, and again by the C side before it allocates.
        if bytes.count >= 24, bytes[12..<16].elementsEqual("IHDR".utf8) {
            func be32(_ at: Int) -> Int { (at..<(at + 4)).reduce(0) { $0 << 8 | Int(bytes[$1]) } }
            try checkDimensions(be32(16), be32(20), path: path, kind: "PNG")
        }
        var pixels: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = alexnet_png_decode_rgb(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count, UInt64(max(0, limits.maxPixels)),
                                            &pixels, &w, &h, &message, message.count)
        guard status == 0, let pixels else {
            throw ImageError(path: path, reason: "cannot decode PNG (\(String(cString: message)))")
        }
        defer { free(pixels) }
        // In Int: w × h × 3 in Int32 overflows from 26755² pixels.
        return RGBImage(width: Int(w), height: Int(h), pixels: Array(UnsafeBufferPointer(start: pixels, count: Int(w) * Int(h) * 3)))
    }

    /// How a JPEG written from RGB stores chroma: horizontal × vertical resolution, as J:a:b.
    public enum ChromaSubsampling: Sendable, CaseIterable {
        case s444, s422, s420, s440, s411

        var turboJPEG: TJSAMP {
            switch self {
            case .s444: TJSAMP_444
            case .s422: TJSAMP_422
            case .s420: TJSAMP_420
            case .s440: TJSAMP_440
            case .s411: TJSAMP_411
            }
        }
    }

    /// Baseline JPEG, by default with 4:2:0 chroma subsampling (the default of Pillow and OpenCV).
    public func encodeJPEG(_ image: RGBImage, quality: Int, subsampling: ChromaSubsampling = .s420) throws -> Data {
        try encodeJPEG(image, quality: quality, subsampling: subsampling) { Data($0) }
    }

    /// Encodes and hands the bytes to `body` without copying them (valid only inside `body`).
    public func encodeJPEG<R>(_ image: RGBImage, quality: Int, subsampling: ChromaSubsampling = .s420,
                              _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try compressed(body) { out, size in
            image.pixels.withUnsafeBufferPointer { p in
                tjCompress2(compressor, p.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue),
                            &out, &size, Int32(subsampling.turboJPEG.rawValue), Int32(quality), 0)
            }
        }
    }

    /// Encodes Y'CbCr planes as they are (4:2:0, or grayscale without chroma): no colour
    /// conversion, no chroma downsampling.
    public func encodeJPEG<R>(_ image: YCbCrImage, quality: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let (cb, cr) = image.chroma ?? (Plane(width: 0, height: 0, bytes: []), Plane(width: 0, height: 0, bytes: []))
        let subsampling = image.chroma == nil ? TJSAMP_GRAY : TJSAMP_420
        return try compressed(body) { out, size in
            image.luma.bytes.withUnsafeBufferPointer { y in
                cb.bytes.withUnsafeBufferPointer { u in
                    cr.bytes.withUnsafeBufferPointer { v in
                        var planes = [y.baseAddress, u.baseAddress, v.baseAddress]
                        var strides = [Int32(image.luma.stride), Int32(cb.stride), Int32(cr.stride)]
                        return tjCompressFromYUVPlanes(compressor, &planes, Int32(image.width), &strides, Int32(image.height),
                                                       Int32(subsampling.rawValue), &out, &size, Int32(quality), 0)
                    }
                }
            }
        }
    }

    /// Runs a TurboJPEG compression that allocates its output, hands the bytes to `body`, frees them.
    private func compressed<R>(_ body: (UnsafeRawBufferPointer) throws -> R,
                               _ compress: (inout UnsafeMutablePointer<UInt8>?, inout UInt) -> Int32) throws -> R {
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = compress(&out, &size)
        defer { if let out { tjFree(out) } }
        guard status == 0, let out else { throw ImageError(path: "<jpeg encoder>", reason: jpegError(compressor)) }
        return try body(UnsafeRawBufferPointer(start: out, count: Int(size)))
    }

    /// Lossless PNG at a fast compression level.
    public func encodePNG(_ image: RGBImage, level: Int = 3) throws -> Data {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { p in
            alexnet_png_encode_rgb(p.baseAddress, Int32(image.width), Int32(image.height), Int32(level), &out, &size, &message, message.count)
        }
        guard status == 0, let out else { throw ImageError(path: "<png encoder>", reason: String(cString: message)) }
        defer { free(out) }
        return Data(bytes: out, count: size)
    }

    /// Lossless 8-bit grayscale PNG of `width`×`height` bytes (row-major), handed to `body`
    /// without a copy (valid only inside it). `decode` reads it back as RGB with R = G = B.
    public func encodeGrayPNG<R>(_ pixels: UnsafeRawBufferPointer, width: Int, height: Int, level: Int = 3,
                                 _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        require(width > 0 && height > 0 && pixels.count == width * height,
                "encodeGrayPNG: \(pixels.count) bytes for a \(width)×\(height) image")
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = alexnet_png_encode_gray(pixels.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(width), Int32(height),
                                             Int32(level), &out, &size, &message, message.count)
        guard status == 0, let out else { throw ImageError(path: "<png encoder>", reason: String(cString: message)) }
        defer { free(out) }
        return try body(UnsafeRawBufferPointer(start: out, count: size))
    }
}
