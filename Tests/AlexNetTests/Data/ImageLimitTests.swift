import AlexNetData
import AlexNetTraining
import CPNG
import Foundation
import XCTest

/// Hostile and unusual inputs made inside the tests: PNGs written chunk by chunk (stored deflate
/// blocks, so any bit depth, colour type, size claim or extra chunk), and JPEGs whose SOF claims
/// another size.
enum HostileImages {
    static let fixtures = Paths.repository.appendingPathComponent("Tests/Fixtures/images")

    static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    /// A zlib stream of stored (uncompressed) deflate blocks.
    static func zlibStored(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var at = 0
        repeat {
            let n = min(65535, raw.count - at)
            let last: UInt8 = at + n == raw.count ? 1 : 0
            out += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += raw[at..<(at + n)]
            at += n
        } while at < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for v in raw { a = (a + UInt32(v)) % 65521; b = (b + a) % 65521 }
        return out + be32(b << 16 | a)
    }

    /// A PNG of the given header whose rows (sample bytes, without the filter byte) are stored
    /// as they are; `extra` chunks go between IHDR and IDAT.
    static func png(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]], extra: [(String, [UInt8])] = []) -> Data {
        let ihdr = be32(UInt32(width)) + be32(UInt32(height)) + [bitDepth, colorType, 0, 0, 0]
        let raw: [UInt8] = rows.flatMap { [UInt8(0)] + $0 }
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr)
        for (type, data) in extra { bytes += chunk(type, data) }
        bytes += chunk("IDAT", zlibStored(raw)) + chunk("IEND", [])
        return Data(bytes)
    }

    /// `png` with a chunk inserted before its first IDAT.
    static func inserting(_ type: String, _ data: [UInt8], into png: Data) -> Data {
        var bytes = [UInt8](png)
        var at = 8
        while at + 8 <= bytes.count {
            let length = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            if bytes[(at + 4)..<(at + 8)].elementsEqual("IDAT".utf8) { break }
            at += 12 + length
        }
        bytes.insert(contentsOf: chunk(type, data), at: at)
        return Data(bytes)
    }

    /// A PNG whose IHDR claims `width`×`height` 8-bit gray pixels, with one row of data: what a
    /// decompression bomb looks like before its IDAT is inflated.
    static func pngClaiming(width: Int, height: Int) -> Data {
        png(width: width, height: height, bitDepth: 8, colorType: 0, rows: [[UInt8](repeating: 0, count: 16)])
    }

    /// A JPEG with its frame header (SOF0/1/2) edited to claim `width`×`height`.
    static func jpeg(_ data: Data, claiming width: Int, height: Int) -> Data {
        var b = [UInt8](data)
        var i = 2
        while i + 9 <= b.count, b[i] == 0xFF {
            let marker = b[i + 1], length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            if [0xC0, 0xC1, 0xC2].contains(marker) {
                b[i + 5] = UInt8(height >> 8); b[i + 6] = UInt8(height & 0xFF)
                b[i + 7] = UInt8(width >> 8); b[i + 8] = UInt8(width & 0xFF)
                return Data(b)
            }
            i += 2 + length
        }
        fatalError("no SOF marker")
    }

    static func odd420() throws -> Data { try Data(contentsOf: fixtures.appendingPathComponent("odd420.jpg")) }
}

/// Decompression bombs, huge files, and PNG variants.
final class ImageLimitTests: XCTestCase {
    func decode(_ data: Data, _ codec: ImageCodec = ImageCodec(), name: String = "test") throws -> RGBImage {
        try data.withUnsafeBytes { try codec.decode($0, path: name) }.image
    }

    func assertRefused(_ body: @autoclosure () throws -> Any, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is ImageError, "\(type(of: error))", file: file, line: line)
            for f in fragments { XCTAssertTrue("\(error)".contains(f), "'\(f)' not in: \(error)", file: file, line: line) }
        }
    }

    func testPillowsPixelLimits() {
        XCTAssertEqual(ImageLimits.standard.warnPixels, 89_478_485)
        XCTAssertEqual(ImageLimits.standard.maxPixels, 178_956_970)
        XCTAssertEqual(ImageLimits.standard.maxFileBytes, 1 << 30)
        XCTAssertLessThan(4 * ImageLimits.standard.maxPixels, Int(Int32.max), "CMYK bytes of the largest image fit in 32 bits")
    }

    /// A JPEG header claiming 65500×65500 is refused from the header (Pillow refuses it as a
    /// decompression bomb), on every decode path, not decoded to a uniform grey image.
    func testJPEGClaimingTooManyPixelsIsRefused() throws {
        let codec = ImageCodec()
        let big = HostileImages.jpeg(try HostileImages.odd420(), claiming: 65500, height: 65500)
        assertRefused(try decode(big, codec, name: "big.jpg"), ["big.jpg", "65500×65500", "decompression bomb"])
        assertRefused(try big.withUnsafeBytes { try codec.decode($0, path: "big.jpg", minimumSize: 256) }, ["65500×65500"])
        XCTAssertNil(big.withUnsafeBytes { codec.decodePlanes($0, minimumSize: 256) })
        let file = try Paths.temporaryDirectory().appendingPathComponent("big.jpg")
        try big.write(to: file)
        assertRefused(try codec.decode(file: file.path, minimumSize: 256, preferPlanes: true), [file.path, "decompression bomb"])
        // Just above the cap, and a legal size with the same body still decodes.
        assertRefused(try decode(HostileImages.jpeg(try HostileImages.odd420(), claiming: 13378, height: 13377), codec), ["13378×13377"])
        XCTAssertEqual(try decode(HostileImages.jpeg(try HostileImages.odd420(), claiming: 300, height: 200), codec).width, 300)
        XCTAssertTrue(codec.takeWarnings().isEmpty)
    }

    /// A PNG whose IHDR claims 40000×40000 is refused from IHDR before any pixel is allocated
    /// (decoding it would take 5 GB and then trap).
    func testPNGBombIsRefusedBeforeAllocating() throws {
        let codec = ImageCodec()
        assertRefused(try decode(HostileImages.pngClaiming(width: 40000, height: 40000), codec, name: "bomb.png"),
                      ["bomb.png", "40000×40000", "decompression bomb"])
        // 26755² pixels × 3 overflows Int32 (the old trap); refused, not wrapped.
        assertRefused(try decode(HostileImages.pngClaiming(width: 26755, height: 26755), codec), ["26755×26755"])
        assertRefused(try decode(HostileImages.pngClaiming(width: 0, height: 5), codec), ["PNG"])
        // The C side holds the cap on its own too (it is what allocates).
        let palette = try Data(contentsOf: HostileImages.fixtures.appendingPathComponent("png_palette.png"))
        var message = [CChar](repeating: 0, count: 256)
        var pixels: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        let status = palette.withUnsafeBytes {
            alexnet_png_decode_rgb($0.baseAddress!.assumingMemoryBound(to: UInt8.self), $0.count, 1960, &pixels, &w, &h, &message, message.count)
        }
        XCTAssertEqual(status, -1)
        XCTAssertNil(pixels)
        XCTAssertTrue(String(cString: message).contains("53x37 = 1961 pixels, more than the 1960 allowed"), String(cString: message))
    }

    /// Above `warnPixels` an image decodes with a warning naming it; above `maxPixels` it is
    /// refused; exactly `maxPixels` is allowed (Pillow refuses only more than 2 × MAX_IMAGE_PIXELS).
    func testWarningAndRefusalThresholds() throws {
        let codec = ImageCodec(limits: ImageLimits(warnPixels: 1000, maxPixels: 2000))
        func gray(_ w: Int, _ h: Int) -> Data {
            HostileImages.png(width: w, height: h, bitDepth: 8, colorType: 0, rows: [[UInt8]](repeating: [UInt8](repeating: 9, count: w), count: h))
        }
        XCTAssertEqual(try decode(gray(40, 25), codec).width, 40)
        XCTAssertTrue(codec.takeWarnings().isEmpty, "1000 pixels is not more than 1000")
        XCTAssertEqual(try decode(gray(40, 50), codec, name: "large.png").pixels.count, 6000)
        let warnings = codec.takeWarnings()
        XCTAssertEqual(warnings.map(\.path), ["large.png"])
        XCTAssertTrue(warnings[0].reason.contains("40×50 = 2000 pixels"), warnings[0].reason)
        XCTAssertTrue(codec.takeWarnings().isEmpty, "taken once")
        assertRefused(try decode(gray(41, 50), codec), ["41×50"])
        let jpeg = try ImageCodec().encodeJPEG(syntheticImage(width: 41, height: 50, seed: 1), quality: 90)
        assertRefused(try decode(jpeg, codec), ["JPEG of 41×50"])
    }

    /// A 20 GiB file is refused without being read (not read whole before its first bytes are
    /// looked at); one that does not start like an image is refused from those bytes.
    func testHugeFilesAreRefusedWithoutReadingThem() throws {
        let folder = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        func sparse(_ name: String, head: [UInt8]) throws -> String {
            let path = folder.appendingPathComponent(name).path
            try Data(head).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(truncate(path, off_t(20) << 30), 0, "sparse file")
            return path
        }
        let codec = ImageCodec()
        let start = Date()
        let jpeg = try sparse("huge.jpg", head: [0xFF, 0xD8, 0xFF, 0xE0])
        assertRefused(try codec.decode(file: jpeg), [jpeg, "21474836480 bytes", "larger than"])
        let other = try sparse("zeros.jpg", head: [0, 0, 0, 0])
        assertRefused(try codec.decode(file: other), [other, "not a JPEG or PNG image (starts with 00 00 00 00)"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "neither file is read")
        let small = ImageCodec(limits: ImageLimits(maxFileBytes: 100))
        assertRefused(try small.decode(file: HostileImages.fixtures.appendingPathComponent("png_palette.png").path), ["larger than the 100 bytes"])
        assertRefused(try codec.decode(file: folder.path), ["not a regular file"])
    }

    /// A palette PNG with a tRNS chunk (valid; Pillow reads it) is read, not rejected. Its RGB is
    /// the palette's colours, as Pillow's convert("RGB") gives (png_palette.rgb.png); tRNS on
    /// gray, low-bit gray and RGB images is dropped the same way.
    func testTransparencyChunksAreDropped() throws {
        let codec = ImageCodec()
        let palette = try Data(contentsOf: HostileImages.fixtures.appendingPathComponent("png_palette.png"))
        let withAlpha = HostileImages.inserting("tRNS", (0..<37).map { UInt8($0 * 7) }, into: palette)
        let expected = try codec.decode(file: HostileImages.fixtures.appendingPathComponent("png_palette.rgb.png").path)
        XCTAssertEqual(try decode(withAlpha, codec), expected)
        let row: [UInt8] = [0, 50, 100, 150, 200, 250]
        let gray = HostileImages.png(width: 6, height: 2, bitDepth: 8, colorType: 0, rows: [row, row], extra: [("tRNS", [0, 100])])
        XCTAssertEqual(try decode(gray, codec).pixels, (row + row).flatMap { [$0, $0, $0] })
        let twoBit = HostileImages.png(width: 4, height: 1, bitDepth: 2, colorType: 0, rows: [[0b00_01_10_11]], extra: [("tRNS", [0, 1])])
        XCTAssertEqual(try decode(twoBit, codec).pixels, [0, 85, 170, 255].flatMap { [$0, $0, $0] })
        let rgb = HostileImages.png(width: 2, height: 1, bitDepth: 8, colorType: 2, rows: [[1, 2, 3, 4, 5, 6]], extra: [("tRNS", [0, 1, 0, 2, 0, 3])])
        XCTAssertEqual(try decode(rgb, codec).pixels, [1, 2, 3, 4, 5, 6])
        let pal = HostileImages.png(width: 3, height: 1, bitDepth: 8, colorType: 3, rows: [[2, 0, 1]],
                                    extra: [("PLTE", [10, 20, 30, 40, 50, 60, 70, 80, 90]), ("tRNS", [0, 128])])
        XCTAssertEqual(try decode(pal, codec).pixels, [70, 80, 90, 10, 20, 30, 40, 50, 60])
    }

    /// 16-bit samples are scaled to 8 bits by their high byte, as libpng and OpenCV do (32767 →
    /// 127). Pillow 13 gives 255 for the 16-bit gray case (it clips its I;16 mode); the scaling is
    /// kept on purpose (docs/DESIGN.md, Data, says so).
    func testSixteenBitSamplesKeepTheirHighByte() throws {
        let codec = ImageCodec()
        let samples: [UInt16] = [32767, 65535, 256, 255, 0]
        let row = samples.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        let gray = HostileImages.png(width: 5, height: 1, bitDepth: 16, colorType: 0, rows: [row])
        XCTAssertEqual(try decode(gray, codec).pixels, [127, 255, 1, 0, 0].flatMap { [$0, $0, $0] })
        let rgb = HostileImages.png(width: 1, height: 1, bitDepth: 16, colorType: 2, rows: [[0x7F, 0xFF, 0x80, 0x00, 0x01, 0x02]])
        XCTAssertEqual(try decode(rgb, codec).pixels, [127, 128, 1])
    }
}
