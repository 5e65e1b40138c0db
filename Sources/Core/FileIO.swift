import Foundation

/// Plain POSIX file access for the hot paths (preprocessing, loading): one open, one fstat, reads
/// into a reused buffer, and no Foundation path resolution per file.
public enum FileIO {
    public struct Failure: DescribedError {
        /// The path as `display` prints it.
        public let path: String
        public let reason: String
        /// The system's error number, 0 when the failure is not a system call's.
        public var code: Int32 = 0
        public var description: String { "\(path): \(reason)" }

        public init(path: String, reason: String, code: Int32 = 0) { (self.path, self.reason, self.code) = (path, reason, code) }

        /// Whether every later write will fail too (a full disk or quota, a read-only or failing
        /// file system): a long run then stops at once instead of failing file after file.
        public var isFatal: Bool { [ENOSPC, EDQUOT, EROFS, EIO].contains(code) }
    }

    private static func failure(_ path: String, _ what: String) -> Failure {
        let code = errno
        return Failure(path: display(path), reason: "\(what) (\(String(cString: strerror(code))))", code: code)
    }

    // MARK: file names that are not UTF-8

    /// Linux file names are bytes; Swift strings are Unicode. A name that is not valid UTF-8 (an
    /// old Latin-1 archive, say) is kept loss-free by mapping each byte that is not part of a valid
    /// sequence to the scalar U+10FF00 + byte (the end of Supplementary Private Use Area-B, which
    /// real names do not use), and mapped back to the same byte whenever the path is opened. So
    /// such a file is read, and its output written under the same bytes, like any other.
    static let rawByteBase: UInt32 = 0x10FF00

    /// The string for a file name's bytes (see `rawByteBase`).
    public static func name(fromBytes bytes: UnsafeBufferPointer<UInt8>) -> String {
        if let valid = String(validating: bytes, as: UTF8.self) { return valid }
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < bytes.count {
            let n = validSequenceLength(bytes, at: i)
            if n > 0 {
                scalars.append(contentsOf: String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<(i + n)]), as: UTF8.self).unicodeScalars)
                i += n
            } else {
                scalars.append(Unicode.Scalar(rawByteBase + UInt32(bytes[i]))!)
                i += 1
            }
        }
        return String(scalars)
    }

    /// Length of the valid UTF-8 sequence starting at `i`, 0 when there is none.
    private static func validSequenceLength(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        let lead = b[i]
        let n = lead < 0x80 ? 1 : lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0
        guard n > 0, i + n <= b.count else { return 0 }
        return String(validating: UnsafeBufferPointer(rebasing: b[i..<(i + n)]), as: UTF8.self) == nil ? 0 : n
    }

    /// Calls `body` with the bytes the kernel knows `path` by (see `rawByteBase`).
    public static func withSystemPath<R>(_ path: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        // U+10FF00…U+10FFFF all start F4 8F BC–BF in UTF-8: a path without 0xF4 needs no mapping.
        guard path.utf8.contains(0xF4) else { return try path.withCString(body) }
        var bytes: [CChar] = []
        for scalar in path.unicodeScalars {
            if scalar.value >= rawByteBase && scalar.value <= rawByteBase + 0xFF {
                bytes.append(CChar(bitPattern: UInt8(scalar.value - rawByteBase)))
            } else {
                bytes.append(contentsOf: String(scalar).utf8.map { CChar(bitPattern: $0) })
            }
        }
        bytes.append(0)
        return try bytes.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// A path as it can be printed on one line or in one TSV field: raw bytes as \xNN, and
    /// backslash, tab, newline and carriage return escaped as \\, \t, \n, \r, the other control
    /// characters (which a terminal would act on) as \xNN or \u{NN}.
    public static func display(_ path: String) -> String {
        func control(_ s: Unicode.Scalar) -> Bool { s.value < 0x20 || (0x7F...0x9F).contains(s.value) }
        guard path.unicodeScalars.contains(where: { control($0) || $0 == "\\" || $0.value >= rawByteBase }) else { return path }
        var out = ""
        for scalar in path.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if scalar.value >= rawByteBase && scalar.value <= rawByteBase + 0xFF {
                    out += String(format: "\\x%02x", scalar.value - rawByteBase)
                } else if scalar.value < 0x80 && control(scalar) {
                    out += String(format: "\\x%02x", scalar.value)
                } else if control(scalar) {
                    out += String(format: "\\u{%02x}", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// `open(2)` on a project path.
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        withSystemPath(path) { Foundation.open($0, flags, mode) }
    }

    /// `stat(2)` on a project path; nil (errno set) when it fails.
    public static func status(_ path: String) -> stat? {
        var st = stat()
        return withSystemPath(path) { stat($0, &st) } == 0 ? st : nil
    }

    /// What a file of mode `mode` is when it is not a regular file ("a folder", "a FIFO", …), for
    /// messages that say why it cannot be read or replaced; nil for a regular file.
    public static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFCHR, S_IFBLK: return "a device"
        case S_IFLNK: return "a symbolic link"
        default: return "an unknown kind of file"
        }
    }

    /// What went wrong, for an error Foundation threw: the system's reason (errno's text) or the
    /// parser's, which Foundation's `localizedDescription` buries under "The operation could not
    /// be completed" on Linux; with `path`, prefixed by the file the error names. The project's
    /// own errors are described by their `description`.
    public static func describe(_ error: Error, path includePath: Bool = false) -> String {
        guard error is CocoaError || error is POSIXError || type(of: error) is NSError.Type else { return "\(error)" }
        let ns = error as NSError
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        var reason: String
        if let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? Error).map({ $0 as NSError }), underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else if let debug = ns.userInfo[NSDebugDescriptionErrorKey] as? String {
            reason = debug
        } else {
            reason = ns.localizedDescription
            for prefix in ["The operation could not be completed. ", "The operation could not be completed"] where reason.hasPrefix(prefix) {
                reason = String(reason.dropFirst(prefix.count))
            }
            if reason.isEmpty { reason = "\(ns.domain) error \(ns.code)" }
        }
        return (includePath ? path.map { "\($0): " } ?? "" : "") + reason
    }

    /// Reads a whole file into `buffer` (grown as needed) and returns its size. A file larger than
    /// `limit` bytes is refused before anything is read.
    @discardableResult
    public static func read(_ path: String, into buffer: inout [UInt8], limit: Int = .max,
                            check: ((UnsafeRawBufferPointer) throws -> Void)? = nil) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, "cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure(path, "cannot stat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(path: display(path), reason: "not a regular file")
        }
        let size = Int(st.st_size)
        guard size <= limit else {
            throw Failure(path: display(path), reason: "\(size) bytes, more than the \(limit) this reader accepts")
        }
        if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
        return try buffer.withUnsafeMutableBytes { raw in
            func fill(from start: Int, to end: Int) throws -> Int {
                var done = start
                while done < end {
                    let n = Foundation.read(fd, raw.baseAddress! + done, end - done)
                    if n < 0 { if errno == EINTR { continue }; throw failure(path, "cannot read") }
                    if n == 0 { break }
                    done += n
                }
                return done
            }
            // The first bytes say what the file is: a wrong kind is refused before the rest is read.
            let head = try fill(from: 0, to: min(size, 64))
            try check?(UnsafeRawBufferPointer(rebasing: raw[0..<head]))
            return head < min(size, 64) ? head : try fill(from: head, to: size)
        }
    }

    /// A whole file mapped into memory read-only (large weight files are not copied), with errors
    /// that name the path and the system's reason.
    public static func mapped(_ path: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, "cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure(path, "cannot stat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw Failure(path: display(path), reason: "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 { return Data() }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else { throw failure(path, "cannot map into memory") }
        return Data(bytesNoCopy: base, count: size, deallocator: .custom { pointer, count in munmap(pointer, count) })
    }

    /// All of `bytes` to `fd` (short writes and EINTR retried); errors name `path`.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw failure(path, "cannot write") }
            done += n
        }
    }

    /// (folder, file name) of a path; "." for a bare name, "/" for a file at the root.
    static func split(_ path: String) -> (String, String) {
        let slash = path.lastIndex(of: "/")
        return (slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? ".", slash.map { String(path[path.index(after: $0)...]) } ?? path)
    }

    /// Creates `path` with `bytes`, atomically and never over an existing file: readers (and a
    /// rerun after a crash) see no file or the whole file, and a file already there, whoever made
    /// it, is left alone (`Failure` "already exists"). Through an unnamed file linked into place
    /// where Linux allows, else a temporary name in the same folder hard-linked into place. `tag`
    /// keeps the temporary names of concurrent writers apart.
    public static func createAtomically(_ bytes: UnsafeRawBufferPointer, at path: String, tag: String) throws {
        let (folder, name) = split(path)
        if try createUnnamed(bytes, folder: folder, at: path) { return }
        let tmp = folder + "/." + name + ".tmp-" + tag
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "cannot create") }
        do { try writeAll(fd, bytes, path) } catch { close(fd); unlinkPath(tmp); throw error }
        guard close(fd) == 0 else { let f = failure(path, "cannot write"); unlinkPath(tmp); throw f }
        // link(2), unlike rename(2), fails when the name exists.
        let linked = withSystemPath(tmp) { t in withSystemPath(path) { link(t, $0) } }
        let linkErrno = errno
        unlinkPath(tmp)
        guard linked == 0 else { errno = linkErrno; throw failure(path, linkErrno == EEXIST ? "already exists" : "cannot link into place") }
    }

    private static func unlinkPath(_ path: String) { _ = withSystemPath(path) { unlink($0) } }

    /// Linux's O_TMPFILE: the data goes into an unnamed file that `linkat` then names, one
    /// directory operation instead of create + link + unlink, and nothing is left if the process
    /// dies. Returns false where the file system does not support it (the caller then links).
    private static func createUnnamed(_ bytes: UnsafeRawBufferPointer, folder: String, at path: String) throws -> Bool {
        #if os(Linux)
        let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY
        let fd = open(folder, oTmpfile | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if errno == EISDIR || errno == EOPNOTSUPP || errno == EINVAL { return false }   // no O_TMPFILE here
            throw failure(path, "cannot create")
        }
        defer { close(fd) }
        try writeAll(fd, bytes, path)
        let procPath = "/proc/self/fd/\(fd)"
        if withSystemPath(path, { linkat(AT_FDCWD, procPath, AT_FDCWD, $0, AT_SYMLINK_FOLLOW) }) == 0 { return true }
        if errno == ENOENT || errno == EPERM || errno == EXDEV { return false }   // no /proc: fall back to a named file
        throw failure(path, errno == EEXIST ? "already exists" : "cannot link into place")
        #else
        return false
        #endif
    }

    /// Writes a file that must survive a crash or power loss whole or not at all (checkpoints):
    /// `body` writes into a temporary file in the same folder, which is flushed to disk (fsync),
    /// renamed over `path` (one atomic step: readers see the old file or the new one), and the
    /// folder is flushed so the rename itself is durable. The previous file stays intact until
    /// the new one is complete. Every file the project saves for keeps goes through here or
    /// through `linkDurably` (bulk outputs that a rerun recreates use `createAtomically`).
    public static func writeDurably(to path: String, _ body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        try checkReplaceable(path)
        let (folder, name) = split(path)
        let tmp = folder + "/." + name + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "cannot create \(display(tmp))") }
        do {
            try body { bytes in try writeAll(fd, bytes, path) }
            guard fsync(fd) == 0 else { throw failure(path, "cannot flush to disk") }
        } catch {
            close(fd); unlinkPath(tmp)
            throw error
        }
        guard close(fd) == 0 else { let f = failure(path, "cannot write"); unlinkPath(tmp); throw f }
        guard withSystemPath(tmp, { t in withSystemPath(path) { rename(t, $0) } }) == 0 else {
            let f = failure(path, "cannot rename into place"); unlinkPath(tmp); throw f
        }
        try syncFolder(folder)
    }

    /// Gives the complete file `source` the second name `path` as durably and atomically as
    /// `writeDurably` writes one (epoch-NNN and best checkpoints): a hard link under a temporary
    /// name renamed over `path`, then the folder flushed, so no second copy of the bytes is
    /// written. Where hard links do not work (another file system, FAT) the bytes are copied
    /// through `writeDurably`.
    public static func linkDurably(_ source: String, to path: String) throws {
        try checkReplaceable(path)
        let (folder, name) = split(path)
        let tmp = folder + "/." + name + ".tmp-\(getpid())"
        unlink(tmp)
        guard link(source, tmp) == 0 else {
            var buffer: [UInt8] = []
            let n = try read(source, into: &buffer)
            try writeDurably(to: path) { write in try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
            return
        }
        guard rename(tmp, path) == 0 else { let f = failure(path, "cannot rename \(tmp) into place"); unlink(tmp); throw f }
        try syncFolder(folder)
    }

    /// Flushes a folder's entries to disk, so that a rename or link in it survives a power loss.
    private static func syncFolder(_ folder: String) throws {
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw failure(folder, "cannot open the folder to flush it") }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw failure(folder, "cannot flush the folder to disk") }
    }

    public static func writeDurably(_ data: Data, to path: String) throws {
        try writeDurably(to: path) { write in try data.withUnsafeBytes(write) }
    }

    /// Creates `path` and the folders above it that are missing (mkdir -p) and returns the ones it
    /// made, outermost first, so that a caller that fails later can remove them again. A path
    /// longer than the system allows is refused before anything is made.
    @discardableResult
    public static func makeFolders(_ path: String) throws -> [String] {
        try checkLength(path)
        if let st = status(path) {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw Failure(path: display(path), reason: "exists and is not a folder") }
            return []
        }
        let (parent, _) = split(path)
        var made: [String] = []
        if parent != path, !parent.isEmpty, parent != ".", status(parent) == nil { made = try makeFolders(parent) }
        if withSystemPath(path, { mkdir($0, 0o755) }) != 0 && errno != EEXIST {
            let f = failure(path, "cannot create the folder")
            removeFolders(made)
            throw f
        }
        return made + [path]
    }

    /// Removes folders made by `makeFolders` (innermost first) where they are still empty.
    public static func removeFolders(_ folders: [String]) {
        for folder in folders.reversed() { _ = withSystemPath(folder) { rmdir($0) } }
    }

    /// Refuses a path the kernel would refuse (ENAMETOOLONG), before anything is created for it:
    /// longer than PATH_MAX bytes in all, or a component longer than NAME_MAX.
    public static func checkLength(_ path: String) throws {
        let bytes = withSystemPath(path) { strlen($0) }
        if bytes >= Int(PATH_MAX) {
            throw Failure(path: String(display(path).prefix(80)) + "…", reason: "path is \(bytes) bytes long, more than the system's limit of \(Int(PATH_MAX) - 1)")
        }
        for component in path.split(separator: "/") where component.utf8.count > Int(NAME_MAX) {
            throw Failure(path: display(path), reason: "the name '\(component.prefix(40))…' is \(component.utf8.count) bytes, more than the system's limit of \(NAME_MAX)")
        }
    }

    /// Identity of a file or folder, whatever path names it.
    public struct FileID: Hashable, Sendable {
        public let device: UInt64
        public let inode: UInt64
        init(_ st: stat) { (device, inode) = (UInt64(st.st_dev), UInt64(st.st_ino)) }
    }

    public static func fileID(_ path: String) -> FileID? { status(path).map(FileID.init) }

    /// What `walk` found.
    public struct Listing: Sendable {
        /// Regular files, as paths relative to the root, sorted.
        public var files: [String] = []
        /// Folders not entered because they were reached before through another path (a symlink
        /// loop such as `sub/up -> ..`, or two links to one folder), or are excluded.
        public var skippedFolders: [String] = []
    }

    /// Regular files under `root`, as paths relative to it, found with readdir (no stat per file
    /// where the file system reports types). Hidden entries are skipped. Symbolic links to folders
    /// are followed, but no folder is entered twice (folders are told apart by device and inode,
    /// so a link loop ends at once) and none in `excluding` is entered.
    public static func list(_ root: String, excluding: Set<FileID> = []) throws -> Listing {
        var listing = Listing()
        var visited = excluding
        func visit(_ relative: String) throws {
            let full = relative.isEmpty ? root : root + "/" + relative
            guard let dir = withSystemPath(full, { opendir($0) }) else { throw failure(full, "cannot list") }
            defer { closedir(dir) }
            var st = stat()
            guard fstat(dirfd(dir), &st) == 0 else { throw failure(full, "cannot stat") }
            guard visited.insert(FileID(st)).inserted else {
                listing.skippedFolders.append(relative.isEmpty ? "." : relative)
                return
            }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                    let chars = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                    return FileIO.name(fromBytes: UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: strlen(chars)))
                }
                if name.hasPrefix(".") { continue }
                let rel = relative.isEmpty ? name : relative + "/" + name
                var type = Int32(entry.pointee.d_type)
                if type == DT_UNKNOWN || type == DT_LNK {
                    guard let st = status(root + "/" + rel) else { continue }
                    type = (st.st_mode & S_IFMT) == S_IFDIR ? Int32(DT_DIR) : (st.st_mode & S_IFMT) == S_IFREG ? Int32(DT_REG) : 0
                }
                if type == DT_DIR { try visit(rel) } else if type == DT_REG { listing.files.append(rel) }
            }
        }
        try visit("")
        listing.files.sort()
        return listing
    }

    /// The regular files of `list(_:)`.
    public static func walk(_ root: String) throws -> [String] { try list(root).files }
}
