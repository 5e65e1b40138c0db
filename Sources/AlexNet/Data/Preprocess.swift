import Foundation

/// `alexnet preprocess` (paper section 2, SPEC section 4): every image under a source folder,
/// shorter side to `size` (antialiased bicubic, Pillow's filter) and optionally the central crop,
/// written under the same relative path in the destination. A JPEG written as JPEG is resized
/// on its own Y'CbCr planes (see `YCbCrImage`); PNG inputs or outputs, CMYK JPEGs and
/// `resizeInRGB` go through RGB, byte-identical to Pillow's `resize`.
///
/// Safe to interrupt and rerun: each output is written under a temporary name and renamed into
/// place, and an output that exists and is complete is skipped. A bad input is listed with its
/// reason (and in `preprocess-errors.tsv`) and never stops the run.
public struct Preprocessor {
    public enum Format: String, Sendable, CaseIterable { case jpeg, png }

    public struct Options: Sendable {
        public var source: String
        public var destination: String
        public var size = 256
        public var centerCrop = false
        public var format = Format.jpeg
        public var quality = 95
        /// JPEG to JPEG, resize in RGB (Pillow's pixels byte for byte before encoding) instead of
        /// on the JPEG's own Y'CbCr planes (`YCbCrImage`: the same filter, no colour conversions).
        public var resizeInRGB = false
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        public init(source: String, destination: String) { (self.source, self.destination) = (source, destination) }
    }

    public struct Report: Sendable {
        public var written = 0
        public var skipped = 0
        public var failures: [(path: String, reason: String)] = []
        public var ignored = 0
        public var seconds = 0.0
        public var imagesPerSecond: Double { seconds > 0 ? Double(written + failures.count) / seconds : 0 }
    }

    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]
    public static let errorsFile = "preprocess-errors.tsv"

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Relative paths of the images under `root` (sorted), and how many other files were passed over.
    public static func listImages(under root: String) throws -> (images: [String], ignored: Int) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw ImageError(path: root, reason: "no such folder")
        }
        var images: [String] = [], ignored = 0
        for rel in try FileIO.walk(root) {
            if imageExtensions.contains((rel as NSString).pathExtension.lowercased()) { images.append(rel) } else { ignored += 1 }
        }
        return (images, ignored)
    }

    /// Where `relative` goes: the same path, the extension following the format (a JPEG keeps its own).
    public func outputPath(for relative: String) -> String {
        let ext = (relative as NSString).pathExtension
        let stem = (relative as NSString).deletingPathExtension
        let newExt: String
        switch options.format {
        case .jpeg: newExt = ["jpg", "jpeg"].contains(ext.lowercased()) ? ext : "jpg"
        case .png: newExt = ext.lowercased() == "png" ? ext : "png"
        }
        return (options.destination as NSString).appendingPathComponent(stem + "." + newExt)
    }

    /// Whether `path` holds a whole JPEG (ends with EOI) or PNG (ends with IEND).
    public static func isComplete(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var t = [UInt8](repeating: 0, count: 12)
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 12, pread(fd, &t, 12, size - 12) == 12 else { return false }
        if t[10] == 0xFF && t[11] == 0xD9 { return true }
        return Array(t[4..<12]) == [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
    }

    public func run(progress: Bool = true) throws -> Report {
        let (listed, ignored) = try Self.listImages(under: options.source)
        try FileManager.default.createDirectory(atPath: options.destination, withIntermediateDirectories: true)
        // Two inputs that differ only in extension (photo.png, photo.jpg) would write one output.
        var owner: [String: String] = [:]
        var collisions: [(path: String, reason: String)] = []
        var kept: [String] = []
        for rel in listed {
            let out = outputPath(for: rel)
            if let first = owner[out] {
                collisions.append(((options.source as NSString).appendingPathComponent(rel),
                                   "its output \(out) is also the output of \(first); rename one of them"))
            } else {
                owner[out] = rel
                kept.append(rel)
            }
        }
        let images = kept
        let reporter = progress ? ProgressReporter(total: images.count, label: "preprocess") : nil
        let counter = WorkCounter(images.count)
        let shared = Shared()
        let start = Date()
        let options = self.options
        let me = self
        runWorkers(max(1, options.threads)) { worker in
            let codec = ImageCodec()
            let tag = "\(getpid())-\(worker)"
            while let i = counter.take() {
                let rel = images[i]
                let src = (options.source as NSString).appendingPathComponent(rel)
                let dst = me.outputPath(for: rel)
                defer { reporter?.advance() }
                if Self.isComplete(dst) {
                    shared.update { $0.skipped += 1 }
                    continue
                }
                do {
                    try shared.ensureFolder((dst as NSString).deletingLastPathComponent)
                    switch try codec.decode(file: src, minimumSize: options.size, preferPlanes: options.format == .jpeg && !options.resizeInRGB) {
                    case .planes(let planes):
                        let image = planes.resizedShorterSide(to: options.size, crop: options.centerCrop)
                        try codec.encodeJPEG(image, quality: options.quality) { try FileIO.writeAtomically($0, to: dst, tag: tag) }
                    case .rgb(let decoded):
                        let image = decoded.resizedShorterSide(to: options.size, crop: options.centerCrop)
                        if options.format == .jpeg {
                            try codec.encodeJPEG(image, quality: options.quality) { try FileIO.writeAtomically($0, to: dst, tag: tag) }
                        } else {
                            try FileIO.writeAtomically(try codec.encodePNG(image), to: dst, tag: tag)
                        }
                    }
                    shared.update { $0.written += 1 }
                } catch {
                    let reason = (error as? ImageError)?.reason ?? (error as? FileIO.Failure)?.reason ?? "\(error)"
                    shared.update { $0.failures.append((src, reason)) }
                }
            }
        }
        reporter?.finish()
        var report = shared.report
        report.ignored = ignored
        report.failures += collisions
        report.seconds = Date().timeIntervalSince(start)
        report.failures.sort { $0.path < $1.path }
        let errorsPath = (options.destination as NSString).appendingPathComponent(Self.errorsFile)
        if report.failures.isEmpty {
            try? FileManager.default.removeItem(atPath: errorsPath)
        } else {
            let tsv = "path\treason\n" + report.failures.map { "\($0.path)\t\($0.reason.replacingOccurrences(of: "\t", with: " "))\n" }.joined()
            try FileIO.writeAtomically(Data(tsv.utf8), to: errorsPath)
        }
        return report
    }

    /// What the worker threads share: the tallies and the folders already made.
    private final class Shared: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var report = Report()
        private var folders = Set<String>()

        func update(_ change: (inout Report) -> Void) {
            lock.lock(); defer { lock.unlock() }
            change(&report)
        }

        func ensureFolder(_ folder: String) throws {
            lock.lock(); defer { lock.unlock() }
            if folders.contains(folder) { return }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            folders.insert(folder)
        }
    }
}
