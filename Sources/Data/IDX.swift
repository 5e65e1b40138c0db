import AlexNetCore
import CZlib
import Foundation

/// What is wrong with an IDX (or gzip) file, naming the file.
public struct IDXError: DescribedError, Sendable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { (self.path, self.reason) = (path, reason) }
    public var description: String { "\(path): \(reason)" }
}

/// The uint8 images of an IDX file: `count` images of `rows`×`columns` bytes, row-major, one
/// after the other.
public struct IDXImages: Sendable {
    public let count: Int
    public let rows: Int
    public let columns: Int
    public let pixels: [UInt8]

    /// Image `i`'s bytes.
    public func image(_ i: Int) -> ArraySlice<UInt8> {
        require(i >= 0 && i < count, "IDX image \(i) of \(count)")
        return pixels[(i * rows * columns)..<((i + 1) * rows * columns)]
    }
}

/// LeCun's IDX format (MNIST, Fashion-MNIST): big-endian, a magic number 0x0000 08 NN (uint8 data,
/// NN dimensions), NN sizes as uint32, then the data. Files may be gzipped.
public enum IDX {
    public static let imagesMagic: UInt32 = 0x0000_0803
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// uint8 images (magic 0x00000803: count, rows, columns).
    public static func readImages(_ path: String) throws -> IDXImages {
        let bytes = try contents(path)
        let sizes = try dimensions(bytes, path: path, magic: imagesMagic, what: "uint8 images")
        guard sizes[1] > 0, sizes[2] > 0 else { throw IDXError(path: path, reason: "images of \(sizes[1])×\(sizes[2]) pixels") }
        return IDXImages(count: sizes[0], rows: sizes[1], columns: sizes[2], pixels: Array(bytes[16...]))
    }

    /// uint8 labels (magic 0x00000801: count).
    public static func readLabels(_ path: String) throws -> [UInt8] {
        let bytes = try contents(path)
        _ = try dimensions(bytes, path: path, magic: labelsMagic, what: "uint8 labels")
        return Array(bytes[8...])
    }

    /// The sizes of an IDX file's header, checked against the magic expected and against the bytes
    /// that follow (neither fewer, a truncated file, nor more, garbage or a wrong count).
    static func dimensions(_ bytes: [UInt8], path: String, magic expected: UInt32, what: String) throws -> [Int] {
        func word(_ at: Int) -> UInt32 { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        func fail(_ reason: String) -> IDXError { IDXError(path: path, reason: reason) }
        guard bytes.count >= 4 else { throw fail("\(bytes.count) bytes: too short for an IDX file") }
        let magic = word(0)
        guard magic == expected else {
            let kind = magic == imagesMagic ? "IDX uint8 images" : magic == labelsMagic ? "IDX uint8 labels" : "not IDX uint8 data"
            func hex(_ v: UInt32) -> String { "0x" + IDXImporter.padded(String(v, radix: 16), width: 8) }
            throw fail("magic number \(hex(magic)) (\(kind)), expected \(hex(expected)) (IDX \(what))")
        }
        let rank = Int(expected & 0xFF), header = 4 + 4 * rank
        guard bytes.count >= header else { throw fail("truncated header: \(bytes.count) bytes, the header alone takes \(header)") }
        let sizes = (0..<rank).map { Int(word(4 + 4 * $0)) }
        let announced = rank == 1 ? "\(sizes[0]) labels" : "\(sizes[0]) images of \(sizes[1])×\(sizes[2])"
        // Three sizes of up to 2³² can overflow even 64 bits.
        var data = 1
        for s in sizes {
            let (product, overflow) = data.multipliedReportingOverflow(by: s)
            guard !overflow else { throw fail("the header announces \(announced): too large") }
            data = product
        }
        let have = bytes.count - header
        if have < data { throw fail("truncated: the header announces \(announced) (\(data) bytes) but only \(have) bytes follow it") }
        if have > data { throw fail("\(have - data) bytes of trailing garbage after the \(announced) the header announces") }
        return sizes
    }

    /// A file's bytes, gunzipped when it starts with gzip's magic (1f 8b); IDX files start with 00 00.
    public static func contents(_ path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        let n: Int
        do { n = try FileIO.read(path, into: &bytes) } catch let f as FileIO.Failure { throw IDXError(path: path, reason: f.reason) }
        bytes.removeLast(bytes.count - n)
        return n >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B ? try gunzip(bytes, path: path) : bytes
    }

    /// zlib's inflate with gzip framing (windowBits 15 + 32); concatenated gzip members are read
    /// one after the other, as gzip itself does.
    static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        guard input.count < Int(UInt32.max) else { throw IDXError(path: path, reason: "\(input.count) bytes: too large for one gzip pass") }
        // zlib keeps a pointer back to the stream and checks it on every call, so the stream must not move.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        func fail(_ what: String, _ status: Int32) -> IDXError {
            IDXError(path: path, reason: "\(what) (zlib: \(stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"))")
        }
        var status = inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw fail("cannot start inflating", status) }
        defer { inflateEnd(stream) }
        // gzip's trailer holds the uncompressed size modulo 2³²: the first guess for the output,
        // bounded because a damaged trailer can say anything (IDX data compresses 2–8×).
        let hint = input.count >= 18 ? input[(input.count - 4)...].reversed().reduce(0) { $0 << 8 | Int($1) } : 0
        var output = [UInt8](repeating: 0, count: max(min(hint, 16 * input.count), 1 << 16))
        var produced = 0
        try input.withUnsafeBufferPointer { source in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.pointee.avail_in = UInt32(source.count)
            while true {
                if produced == output.count { output += repeatElement(0, count: output.count) }
                status = output.withUnsafeMutableBufferPointer { out in
                    let room = UInt32(min(out.count - produced, Int(UInt32.max)))
                    stream.pointee.next_out = out.baseAddress! + produced
                    stream.pointee.avail_out = room
                    let s = inflate(stream, Z_NO_FLUSH)
                    produced += Int(room - stream.pointee.avail_out)
                    return s
                }
                switch status {
                case Z_OK: continue
                case Z_STREAM_END:
                    let left = Int(stream.pointee.avail_in)
                    if left == 0 { return }
                    guard left >= 2, stream.pointee.next_in[0] == 0x1F, stream.pointee.next_in[1] == 0x8B else {
                        throw IDXError(path: path, reason: "\(left) bytes of trailing garbage after the gzip stream")
                    }
                    status = inflateReset(stream)
                    guard status == Z_OK else { throw fail("cannot restart inflating for the next gzip member", status) }
                case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                    throw IDXError(path: path, reason: "truncated gzip file: the compressed data ends after \(produced) bytes of output")
                case Z_DATA_ERROR: throw fail("corrupt gzip data after \(produced) bytes of output", status)
                case Z_MEM_ERROR: throw fail("out of memory inflating", status)
                default: throw fail("cannot inflate", status)
                }
            }
        }
        output.removeLast(output.count - produced)
        return output
    }
}

/// Writes IDX images and labels as an ImageFolder dataset:
/// `DST/<split>/<class>/<index>.png`, 8-bit grayscale PNG, names zero-padded so that sorted
/// order is the IDX order. Every file is checked before anything is written; outputs appear
/// under their names only when complete, and a rerun skips the complete ones.
///
/// Labels elsewhere come from the sorted folder names (`LabelMap`), so they need not equal the
/// IDX label numbers: for Fashion-MNIST the folders sort Ankle_boot, Bag, Coat, Dress, Pullover,
/// Sandal, Shirt, Sneaker, T-shirt_top, Trouser.
public struct IDXImporter {
    /// Fashion-MNIST's classes 0–9 as folder names: the published names ("T-shirt/top",
    /// "Ankle boot") with '/' and ' ' as '_', so no folder needs quoting in a shell.
    public static let fashionMNISTClasses = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]
    /// Where Debian's `dataset-fashion-mnist` puts the four files.
    public static let fashionMNISTDefaultFolder = "/usr/share/datasets/fashion-mnist"

    /// One split's pair of IDX files.
    public struct Source: Sendable {
        public var split: String
        public var images: String
        public var labels: String
        public init(split: String, images: String, labels: String) { (self.split, self.images, self.labels) = (split, images, labels) }
    }

    public struct Options: Sendable {
        public var destination: String
        public var sources: [Source]
        /// Folder name of each label; nil: "0", "1", … up to the largest label found, zero-padded
        /// to one width so that their sorted order is the numeric one.
        public var classes: [String]?
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        public var pngLevel = 3
        public init(destination: String, sources: [Source], classes: [String]? = nil) {
            (self.destination, self.sources, self.classes) = (destination, sources, classes)
        }
    }

    public struct SplitReport: Sendable {
        public var split: String
        public var folder: String
        public var perClass: [Int]
        public var written = 0
        public var skipped = 0
        public var count: Int { perClass.reduce(0, +) }
    }

    public struct Report: Sendable {
        public var classes: [String]
        public var splits: [SplitReport]
        public var seconds = 0.0
    }

    /// What an import's destination records (`import.json`): which tool made it, with which
    /// class folders, so that a rerun or another split's import continues it.
    struct Manifest: Codable {
        var tool = "alexnet import"
        var classes: [String]
    }
    public static let manifestFile = "import.json"

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Fashion-MNIST from `folder`: train (60 000) and val (t10k, 10 000), in the class folders of
    /// `fashionMNISTClasses`. Missing files name the Debian package that provides them.
    public static func fashionMNIST(from folder: String = fashionMNISTDefaultFolder, to destination: String) throws -> Options {
        let hint = "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist; `dpkg -L dataset-fashion-mnist` lists where its files are) or pass the folder that holds them"
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw IDXError(path: folder, reason: "no such folder; \(hint)")
        }
        let sources = [("train", "train"), ("val", "t10k")].map { split, prefix in
            Source(split: split, images: (folder as NSString).appendingPathComponent("\(prefix)-images-idx3-ubyte.gz"),
                   labels: (folder as NSString).appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz"))
        }
        for path in sources.flatMap({ [$0.images, $0.labels] }) where !FileManager.default.fileExists(atPath: path) {
            throw IDXError(path: path, reason: "missing; \(hint)")
        }
        return Options(destination: destination, sources: sources, classes: fashionMNISTClasses)
    }

    /// Why `name` cannot be a class folder, or nil. Hidden names would be skipped by the listing.
    static func folderProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.contains("/") || name.contains("\0") { return "contains '/' or NUL" }
        if name.hasPrefix(".") { return "starts with '.' (hidden folders are not listed)" }
        return nil
    }

    /// Zero-padded on the left to `width`.
    static func padded(_ s: String, width: Int) -> String {
        s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    public func run(progress: Bool = true) throws -> Report {
        try Limits.check(threads: options.threads)
        let start = Date()
        require(Set(options.sources.map(\.split)).count == options.sources.count, "IDXImporter: two sources for one split")
        var loaded: [(images: IDXImages, labels: [UInt8])] = []
        for s in options.sources {
            let images = try IDX.readImages(s.images), labels = try IDX.readLabels(s.labels)
            guard images.count == labels.count else {
                throw IDXError(path: s.labels, reason: "\(labels.count) labels for the \(images.count) images of \(s.images)")
            }
            loaded.append((images, labels))
        }
        let largest = loaded.compactMap { $0.labels.max() }.max().map(Int.init) ?? 0
        let classes = options.classes ?? (0...largest).map { Self.padded(String($0), width: String(largest).count) }
        if let bad = classes.first(where: { Self.folderProblem($0) != nil }) {
            throw IDXError(path: options.destination, reason: "class folder name '\(bad)' \(Self.folderProblem(bad)!)")
        }
        guard Set(classes).count == classes.count else {
            throw IDXError(path: options.destination, reason: "class folder names repeat: \(classes.joined(separator: ","))")
        }
        for (s, l) in zip(options.sources, loaded) {
            if let i = l.labels.firstIndex(where: { Int($0) >= classes.count }) {
                throw IDXError(path: s.labels, reason: "label \(l.labels[i]) of image \(i) is beyond the \(classes.count) classes (\(classes.joined(separator: ",")))")
            }
        }
        // A destination holding anything but an earlier import of the same classes is refused
        // before a file is written: the import replaces incomplete files it finds.
        let wanted = Manifest(classes: classes)
        try OwnedFolder.claim(options.destination, manifest: Self.manifestFile, wanted: wanted, owner: "import") { found in
            found.classes == classes ? [] : ["classes \(found.classes.joined(separator: ",")) → \(classes.joined(separator: ","))"]
        }
        var reports: [SplitReport] = []
        for (s, l) in zip(options.sources, loaded) {
            let folder = (options.destination as NSString).appendingPathComponent(s.split)
            var perClass = [Int](repeating: 0, count: classes.count)
            for label in l.labels { perClass[Int(label)] += 1 }
            for (c, n) in perClass.enumerated() where n > 0 {
                try FileManager.default.createDirectory(atPath: (folder as NSString).appendingPathComponent(classes[c]), withIntermediateDirectories: true)
            }
            reports.append(SplitReport(split: s.split, folder: folder, perClass: perClass))
        }
        // One queue over every split: image j belongs to the split whose range holds it.
        let offsets = loaded.reduce(into: [0]) { $0.append($0.last! + $1.images.count) }
        let shared = Shared(reports)
        let counter = WorkCounter(offsets.last!)
        let reporter = progress ? ProgressReporter(total: offsets.last!, label: "import") : nil
        let level = options.pngLevel
        let folders = reports.map(\.folder)
        let widths = loaded.map { max(5, String($0.images.count - 1).count) }
        let data = loaded
        runWorkers(max(1, options.threads)) { worker in
            let codec = ImageCodec()
            let tag = "\(getpid())-\(worker)"
            while !shared.failed, let j = counter.take() {
                defer { reporter?.advance() }
                let s = offsets.lastIndex { $0 <= j }!, i = j - offsets[s]
                let images = data[s].images
                let path = folders[s] + "/" + classes[Int(data[s].labels[i])] + "/" + Self.padded(String(i), width: widths[s]) + ".png"
                if Preprocessor.isComplete(path) { shared.count(s, skipped: true); continue }
                // The import's own output, cut short (by a writer without atomic writes): made again.
                _ = FileIO.withSystemPath(path) { unlink($0) }
                do {
                    try images.image(i).withUnsafeBytes { pixels in
                        try codec.encodeGrayPNG(pixels, width: images.columns, height: images.rows, level: level) {
                            try FileIO.createAtomically($0, at: path, tag: tag)
                        }
                    }
                    shared.count(s, skipped: false)
                } catch {
                    shared.fail(error is FileIO.Failure ? error : IDXError(path: path, reason: "\(error)"))
                }
            }
        }
        reporter?.finish()
        if let error = shared.error { throw error }
        return Report(classes: classes, splits: shared.reports, seconds: Date().timeIntervalSince(start))
    }

    /// The workers' tallies and the first error (which stops them).
    private final class Shared: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var reports: [SplitReport]
        private(set) var error: Error?
        init(_ reports: [SplitReport]) { self.reports = reports }
        var failed: Bool { lock.lock(); defer { lock.unlock() }; return error != nil }
        func count(_ split: Int, skipped: Bool) {
            lock.lock(); defer { lock.unlock() }
            if skipped { reports[split].skipped += 1 } else { reports[split].written += 1 }
        }
        func fail(_ e: Error) { lock.lock(); defer { lock.unlock() }; if error == nil { error = e } }
    }
}
