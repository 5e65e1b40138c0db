import Foundation

/// `alexnet preprocess` (paper section 2, SPEC section 4): every image under a source folder,
/// shorter side to `size` (antialiased bicubic, Pillow-exact) and optionally the central crop,
/// written under the same relative path in the destination.
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
        guard let walker = FileManager.default.enumerator(atPath: root) else { throw ImageError(path: root, reason: "cannot list") }
        var images: [String] = [], ignored = 0
        while let rel = walker.nextObject() as? String {
            guard walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular else { continue }
            if (rel as NSString).lastPathComponent.hasPrefix(".") { continue }
            if imageExtensions.contains((rel as NSString).pathExtension.lowercased()) { images.append(rel) } else { ignored += 1 }
        }
        return (images.sorted(), ignored)
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
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size >= 12 else { return false }
        try? handle.seek(toOffset: size - 12)
        guard let tail = try? handle.readToEnd(), tail.count == 12 else { return false }
        let t = [UInt8](tail)
        if t[10] == 0xFF && t[11] == 0xD9 { return true }
        return Array(t[4..<12]) == [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
    }

    public func run(progress: Bool = true) throws -> Report {
        let (images, ignored) = try Self.listImages(under: options.source)
        try FileManager.default.createDirectory(atPath: options.destination, withIntermediateDirectories: true)
        let reporter = progress ? ProgressReporter(total: images.count, label: "preprocess") : nil
        let counter = WorkCounter(images.count)
        let shared = Shared()
        let start = Date()
        let options = self.options
        let me = self
        runWorkers(max(1, options.threads)) { _ in
            let codec = ImageCodec()
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
                    let image = try codec.decode(file: src, minimumSize: options.size)
                        .resizedShorterSide(to: options.size, crop: options.centerCrop)
                    let bytes = options.format == .jpeg ? try codec.encodeJPEG(image, quality: options.quality) : try codec.encodePNG(image)
                    try shared.ensureFolder((dst as NSString).deletingLastPathComponent)
                    try Self.writeAtomically(bytes, to: dst)
                    shared.update { $0.written += 1 }
                } catch {
                    let reason = (error as? ImageError)?.reason ?? "\(error)"
                    shared.update { $0.failures.append((src, reason)) }
                }
            }
        }
        reporter?.finish()
        var report = shared.report
        report.ignored = ignored
        report.seconds = Date().timeIntervalSince(start)
        report.failures.sort { $0.path < $1.path }
        let errorsPath = (options.destination as NSString).appendingPathComponent(Self.errorsFile)
        if report.failures.isEmpty {
            try? FileManager.default.removeItem(atPath: errorsPath)
        } else {
            let tsv = "path\treason\n" + report.failures.map { "\($0.path)\t\($0.reason.replacingOccurrences(of: "\t", with: " "))\n" }.joined()
            try Self.writeAtomically(Data(tsv.utf8), to: errorsPath)
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

    /// Writes through a temporary name in the same folder, then renames: readers never see half a file.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let tmp = (folder as NSString).appendingPathComponent(".\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ImageError(path: path, reason: "cannot create (\(String(cString: strerror(errno))))") }
        let ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw ImageError(path: path, reason: "cannot write (\(reason))")
        }
    }
}
