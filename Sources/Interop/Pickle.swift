import AlexNetCore
import Foundation

/// A restricted reader of Python's pickle format (protocols 2–5), for what `torch.save` puts in a
/// state dict or a checkpoint dict: None, booleans, integers, floats, strings, bytes, tuples,
/// lists, dicts (`collections.OrderedDict` too), storages (persistent ids) and tensors
/// (`torch._utils._rebuild_tensor_v2`). It is a data parser, not an interpreter: it constructs no
/// Python object and calls nothing; any other global, any other opcode, is an error naming it and
/// its byte offset. Every length is checked against the input, and the stack, memo and nesting
/// depth are bounded, so a crafted pickle can neither run code nor crash the process (a value
/// nested thousands deep would overflow the stack when it is torn down).
public enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case storage(TorchStorage)
    /// A typed storage class (`torch.FloatStorage`, …): only ever the type in a persistent id.
    case storageType(TorchDType)
    case tensor(TorchTensor)
    /// One of the allowed callables, before REDUCE applies it.
    case global(PickleGlobal)

    /// The value in a few words: two levels of containers, four items each, strings cut at 40
    /// characters and escaped. Error messages quote values from untrusted files, so this stays one
    /// short line whatever the value holds.
    public var description: String { describe(levels: 2) }

    private func describe(levels: Int) -> String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return "\(i)"
        case .float(let d): return "\(d)"
        case .string(let s):
            let cut = s.unicodeScalars.prefix(40)
            return "'" + FileIO.display(String(String.UnicodeScalarView(cut))) + (cut.endIndex < s.unicodeScalars.endIndex ? "…'" : "'")
        case .bytes(let b): return "<\(b.count) bytes>"
        case .tuple(let t):
            guard levels > 0 || t.isEmpty else { return "(…)" }
            return "(" + t.prefix(4).map { $0.describe(levels: levels - 1) }.joined(separator: ", ") + (t.count > 4 ? ", …" : "") + ")"
        case .list(let l): return "[\(l.items.count) items]"
        case .dict(let d): return "{\(d.entries.count) entries}"
        case .storage(let s): return "storage \(s.key) (\(s.dtype.rawValue) × \(s.count))"
        case .storageType(let d): return "torch.\(d.rawValue)"
        case .tensor(let t): return "tensor \(t.shape) \(t.storage.dtype.rawValue)"
        case .global(let g): return g.rawValue
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int? { if case .int(let i) = self { return i }; if case .bool(let b) = self { return b ? 1 : 0 }; return nil }
    public var double: Double? {
        switch self {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }
    public var tensor: TorchTensor? { if case .tensor(let t) = self { return t }; return nil }
    public var items: [PickleValue]? {
        switch self {
        case .list(let l): return l.items
        case .tuple(let t): return t
        default: return nil
        }
    }
    public var entries: [(key: PickleValue, value: PickleValue)]? { if case .dict(let d) = self { return d.entries }; return nil }

    /// The value under a string key of a dict.
    public subscript(key: String) -> PickleValue? {
        entries?.first { $0.key.string == key }?.value
    }
}

/// Lists and dicts are references in pickle (filled after they are memoised), so here too.
/// `nesting` is the depth of containers down from this one (1 when it holds no container);
/// `sealed`: it has been put inside another container, so it may no longer grow (see `Unpickler`).
public final class PickleList {
    public var items: [PickleValue] = []
    var nesting = 1, sealed = false
}
public final class PickleDict {
    public var entries: [(key: PickleValue, value: PickleValue)] = []
    var nesting = 1, sealed = false
}

/// The only callables a state dict needs.
public enum PickleGlobal: String, Sendable {
    case orderedDict = "collections.OrderedDict"
    case rebuildTensor = "torch._utils._rebuild_tensor_v2"
    case rebuildParameter = "torch._utils._rebuild_parameter"
}

/// The element types of PyTorch's typed storages.
public enum TorchDType: String, Sendable {
    case float32 = "FloatStorage", float64 = "DoubleStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage", uint8 = "ByteStorage"
    case bool = "BoolStorage"

    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }
}

/// A storage named by a persistent id: its archive entry key, element type and element count.
public struct TorchStorage: Sendable {
    public let key: String
    public let dtype: TorchDType
    public let count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
public struct TorchTensor: Sendable {
    public let storage: TorchStorage
    public let offset: Int
    public let shape: [Int]
    public let stride: [Int]
    public var elementCount: Int { shape.reduce(1, *) }
}

public struct PickleError: DescribedError {
    public let path: String
    public let offset: Int
    public let reason: String
    public var description: String { "\(path): pickle byte \(offset): \(reason)" }
}

public struct Unpickler {
    /// Bounds that no state dict comes near and that keep a crafted input's memory small.
    static let maxStack = 1 << 20, maxMemo = 1 << 20, maxString = 1 << 30
    /// Containers (tuples, lists, dicts) nested deeper than this are refused: a state dict or a
    /// checkpoint dict nests a few levels, and a value nested thousands deep would overflow the
    /// thread's stack when Swift tears it down (one call per level).
    public static let maxDepth = 1000

    /// Reads a pickle into its value.
    ///
    /// The nesting of every value is known when it is built: a tuple's is fixed at creation, and
    /// a list or dict keeps its own (`nesting`), which grows with what APPEND and SETITEM add. A
    /// list or dict put inside another container is sealed: adding to it afterwards (what only a
    /// recursive object's pickle does) is refused, so a container's nesting never changes behind
    /// the containers that hold it, the depth bound holds for the whole tree, and no value can
    /// hold itself.
    public static func load(_ bytes: [UInt8], path: String) throws -> PickleValue {
        var stack: [PickleValue] = []
        // The nesting of each stack value (lists and dicts keep theirs up to date themselves).
        var depths: [Int] = []
        var marks: [Int] = []
        var memo: [Int: (value: PickleValue, depth: Int)] = [:]
        var pos = 0
        var opStart = 0
        func fail(_ reason: String) -> PickleError { PickleError(path: path, offset: opStart, reason: reason) }
        func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - pos else { throw fail("needs \(n) bytes, \(bytes.count - pos) left (truncated pickle)") }
            defer { pos += n }
            return bytes[pos..<(pos + n)]
        }
        func unsigned(_ n: Int) throws -> UInt64 { try take(n).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func length(_ n: Int) throws -> Int {
            let v = try unsigned(n)
            guard v <= UInt64(maxString) else { throw fail("a length of \(v) bytes is beyond what this reader accepts") }
            return Int(v)
        }
        func nesting(_ v: PickleValue, _ recorded: Int) -> Int {
            switch v {
            case .list(let l): return l.nesting
            case .dict(let d): return d.nesting
            default: return recorded
            }
        }
        func push(_ v: PickleValue, depth: Int = 0) throws {
            guard stack.count < maxStack else { throw fail("stack deeper than \(maxStack)") }
            stack.append(v)
            depths.append(depth)
        }
        func popEntry() throws -> (value: PickleValue, depth: Int) {
            guard let v = stack.popLast(), let d = depths.popLast() else { throw fail("pops an empty stack") }
            if let m = marks.last, stack.count < m { throw fail("pops past a MARK") }
            return (v, nesting(v, d))
        }
        func pop() throws -> PickleValue { try popEntry().value }
        func popMark() throws -> (values: [PickleValue], depths: [Int]) {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("needs a MARK that is not there") }
            defer { stack.removeLast(stack.count - m); depths.removeLast(depths.count - m) }
            return (Array(stack[m...]), zip(stack[m...], depths[m...]).map { nesting($0, $1) })
        }
        func top() throws -> PickleValue {
            guard let v = stack.last else { throw fail("needs a value on an empty stack") }
            return v
        }
        /// The nesting of a container holding `values` (of nestings `depths`), which it seals;
        /// `target` is the list or dict they go into, if it exists already.
        func contain(_ values: [PickleValue], _ depths: [Int], in target: AnyObject? = nil) throws -> Int {
            let depth = 1 + (depths.max() ?? 0)
            guard depth <= maxDepth else {
                throw fail("containers (tuples, lists, dicts) nested more than \(maxDepth) deep; a state dict nests a few levels")
            }
            for v in values {
                switch v {
                case .list(let l):
                    if l === target { throw fail("a list put inside itself (a recursive object; a state dict is not one)") }
                    l.sealed = true
                case .dict(let d):
                    if d === target { throw fail("a dict put inside itself (a recursive object; a state dict is not one)") }
                    d.sealed = true
                default: break
                }
            }
            return depth
        }
        func tuple(_ values: [PickleValue], _ depths: [Int]) throws {
            try push(.tuple(values), depth: try contain(values, depths))
        }
        func text(_ n: Int) throws -> String {
            guard let s = String(validating: try take(n), as: UTF8.self) else { throw fail("a string that is not UTF-8") }
            return s
        }
        func memoize(_ key: Int) throws {
            guard memo.count < maxMemo || memo[key] != nil else { throw fail("memo larger than \(maxMemo)") }
            guard let v = stack.last, let d = depths.last else { throw fail("needs a value on an empty stack") }
            memo[key] = (v, d)
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            let full = module + "." + name
            if let g = PickleGlobal(rawValue: full) { return .global(g) }
            if module == "torch", let dtype = TorchDType(rawValue: name) { return .storageType(dtype) }
            throw fail("refuses the global \(full): a state dict holds only tensors, numbers, strings and containers")
        }

        while true {
            opStart = pos
            guard pos < bytes.count else { throw fail("ends without STOP (truncated pickle)") }
            let op = bytes[pos]
            pos += 1
            switch op {
            case 0x80:   // PROTO
                let v = try unsigned(1)
                guard (2...5).contains(v) else { throw fail("pickle protocol \(v); protocols 2 to 5 are read") }
            case 0x95: _ = try take(8)                                   // FRAME: a length only
            case 0x2E: return try pop()                                  // STOP
            case 0x28: marks.append(stack.count)                         // MARK
            case 0x30: _ = try pop()                                     // POP
            case 0x31: _ = try popMark()                                 // POP_MARK
            case 0x32: guard let d = depths.last else { throw fail("needs a value on an empty stack") }   // DUP
                try push(try top(), depth: d)
            case 0x4E: try push(.none)                                   // NONE
            case 0x88: try push(.bool(true))                             // NEWTRUE
            case 0x89: try push(.bool(false))                            // NEWFALSE
            case 0x4B: try push(.int(Int(try unsigned(1))))              // BININT1
            case 0x4D: try push(.int(Int(try unsigned(2))))              // BININT2
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try unsigned(4)))))   // BININT
            case 0x8A:                                                   // LONG1
                let n = try length(1)
                guard n <= 8 else { throw fail("an integer of \(n) bytes does not fit 64 bits") }
                let raw = try unsigned(n)
                let shift = UInt64(64 - 8 * n)
                try push(.int(n == 0 ? 0 : Int(Int64(bitPattern: raw << shift) >> Int64(shift))))
            case 0x47:                                                   // BINFLOAT, big-endian
                try push(.float(Double(bitPattern: try take(8).reduce(0) { $0 << 8 | UInt64($1) })))
            case 0x58: try push(.string(try text(try length(4))))        // BINUNICODE
            case 0x8C: try push(.string(try text(try length(1))))        // SHORT_BINUNICODE
            case 0x8D: try push(.string(try text(try length(8))))        // BINUNICODE8
            case 0x43: try push(.bytes(Array(try take(try length(1)))))  // SHORT_BINBYTES
            case 0x42: try push(.bytes(Array(try take(try length(4)))))  // BINBYTES
            case 0x29: try push(.tuple([]), depth: 1)                    // EMPTY_TUPLE
            case 0x85: let a = try popEntry(); try tuple([a.value], [a.depth])                        // TUPLE1
            case 0x86: let b = try popEntry(), a = try popEntry(); try tuple([a.value, b.value], [a.depth, b.depth])   // TUPLE2
            case 0x87:                                                   // TUPLE3
                let c = try popEntry(), b = try popEntry(), a = try popEntry()
                try tuple([a.value, b.value, c.value], [a.depth, b.depth, c.depth])
            case 0x74: let m = try popMark(); try tuple(m.values, m.depths)   // TUPLE
            case 0x5D: try push(.list(PickleList()))                     // EMPTY_LIST
            case 0x6C:                                                   // LIST
                let m = try popMark(), l = PickleList()
                l.nesting = try contain(m.values, m.depths)
                l.items = m.values
                try push(.list(l))
            case 0x61, 0x65:                                             // APPEND, APPENDS
                let m: (values: [PickleValue], depths: [Int])
                if op == 0x61 { let v = try popEntry(); m = ([v.value], [v.depth]) } else { m = try popMark() }
                guard case .list(let l) = try top() else { throw fail("APPEND to \(try top()), not a list") }
                guard !l.sealed else { throw fail("APPEND to a list already inside another container (a recursive object; a state dict is not one)") }
                l.nesting = max(l.nesting, try contain(m.values, m.depths, in: l))
                l.items += m.values
            case 0x7D: try push(.dict(PickleDict()))                     // EMPTY_DICT
            case 0x64, 0x73, 0x75:                                       // DICT, SETITEM, SETITEMS
                let m: (values: [PickleValue], depths: [Int])
                if op == 0x73 { let v = try popEntry(), k = try popEntry(); m = ([k.value, v.value], [k.depth, v.depth]) } else { m = try popMark() }
                guard m.values.count % 2 == 0 else { throw fail("an odd number of keys and values") }
                for k in stride(from: 0, to: m.values.count, by: 2) {
                    switch m.values[k] {
                    case .string, .int, .bool, .none, .float: break
                    default: throw fail("a dict key of kind \(m.values[k]); only strings and numbers are read")
                    }
                }
                let d: PickleDict
                if op == 0x64 { d = PickleDict(); try push(.dict(d)) } else {
                    guard case .dict(let target) = try top() else { throw fail("SETITEM on \(try top()), not a dict") }
                    guard !target.sealed else { throw fail("SETITEM on a dict already inside another container (a recursive object; a state dict is not one)") }
                    d = target
                }
                d.nesting = max(d.nesting, try contain(m.values, m.depths, in: d))
                for k in stride(from: 0, to: m.values.count, by: 2) { d.entries.append((m.values[k], m.values[k + 1])) }
            case 0x71: try memoize(Int(try unsigned(1)))                 // BINPUT
            case 0x72: try memoize(Int(try unsigned(4)))                 // LONG_BINPUT
            case 0x94: try memoize(memo.count)                           // MEMOIZE
            case 0x68, 0x6A:                                             // BINGET, LONG_BINGET
                let key = Int(try unsigned(op == 0x68 ? 1 : 4))
                guard let v = memo[key] else { throw fail("memo entry \(key) was never stored") }
                try push(v.value, depth: v.depth)
            case 0x63:                                                   // GLOBAL "module\nname\n"
                func line() throws -> String {
                    guard let end = bytes[pos...].prefix(256).firstIndex(of: 0x0A) else { throw fail("GLOBAL without its newline") }
                    let s = try text(end - pos)
                    pos += 1
                    return s
                }
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93:                                                   // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else { throw fail("STACK_GLOBAL of non-strings") }
                try push(try global(m, n))
            case 0x51:                                                   // BINPERSID
                try push(try storage(try pop(), fail))
            case 0x52:                                                   // REDUCE
                let args = try popEntry(), callable = try pop()
                guard case .global(let g) = callable, case .tuple(let a) = args.value else {
                    throw fail("REDUCE of \(callable) on \(args.value): only OrderedDict and tensor rebuilding are applied")
                }
                try push(try reduce(g, a, fail))
            case 0x62:                                                   // BUILD
                let state = try pop()
                // PyTorch sets an OrderedDict's `_metadata` (module versions) this way: not needed.
                guard case .dict = try top(), case .dict = state else {
                    throw fail("BUILD of \(try top()) with \(state): only a dict's attributes are accepted (and ignored)")
                }
            default:
                throw fail(String(format: "opcode 0x%02x is not read (a state dict does not need it)", op))
            }
        }
    }

    /// ('storage', storage type, key, location, element count), as `torch.save` writes it.
    private static func storage(_ pid: PickleValue, _ fail: (String) -> PickleError) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, t[0].string == "storage", case .storageType(let dtype) = t[1],
              let key = t[2].string, let count = t[4].int, count >= 0 else {
            throw fail("persistent id \(pid) is not ('storage', type, key, location, count)")
        }
        guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw fail("storage key '\(key)' is not a plain name")
        }
        return .storage(TorchStorage(key: key, dtype: dtype, count: count))
    }

    private static func reduce(_ g: PickleGlobal, _ args: [PickleValue], _ fail: (String) -> PickleError) throws -> PickleValue {
        switch g {
        case .orderedDict:
            guard args.isEmpty else { throw fail("OrderedDict with arguments") }
            return .dict(PickleDict())
        case .rebuildParameter:
            guard args.count >= 1, case .tensor = args[0] else { throw fail("_rebuild_parameter without a tensor") }
            return args[0]
        case .rebuildTensor:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard args.count >= 4, case .storage(let s) = args[0], let offset = args[1].int,
                  let size = args[2].items?.map(\.int), let stride = args[3].items?.map(\.int) else {
                throw fail("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, …)")
            }
            let shape = size.compactMap { $0 }, strides = stride.compactMap { $0 }
            guard shape.count == size.count, strides.count == stride.count, shape.count == strides.count, shape.count <= 8 else {
                throw fail("tensor size \(size) and stride \(stride) do not match")
            }
            try checkView(storage: s, offset: offset, shape: shape, stride: strides, fail)
            return .tensor(TorchTensor(storage: s, offset: offset, shape: shape, stride: strides))
        }
    }

    /// Refuses a view that reaches outside its storage, with arithmetic that cannot overflow.
    static func checkView(storage: TorchStorage, offset: Int, shape: [Int], stride: [Int], _ fail: (String) -> PickleError) throws {
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
            throw fail("tensor with a negative offset, size or stride (\(offset), \(shape), \(stride))")
        }
        var count = 1, last = offset
        for (n, s) in zip(shape, stride) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            let (reach, o2) = max(n - 1, 0).multipliedReportingOverflow(by: s)
            let (l, o3) = last.addingReportingOverflow(reach)
            guard !o1, !o2, !o3 else { throw fail("tensor size \(shape) with stride \(stride) overflows") }
            (count, last) = (c, l)
        }
        if count > 0 && last >= storage.count {
            throw fail("tensor size \(shape), stride \(stride), offset \(offset) reaches element \(last) of a storage of \(storage.count)")
        }
    }
}

/// Writes pickle protocol 2 for the values `torch.save` needs to write a state dict or a
/// checkpoint dict: what `Unpickler` reads (and `torch.load(weights_only=True)` accepts).
public struct Pickler {
    /// A value to write; tensors are float32 storages named by key.
    public indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String)
        case tuple([Value]), list([Value])
        /// Written as a plain dict, or a `collections.OrderedDict` (what state dicts are).
        case dict([(key: Value, value: Value)], ordered: Bool)
        case tensor(storageKey: String, count: Int, shape: [Int])
    }

    public private(set) var bytes: [UInt8] = [0x80, 0x02]

    public init() {}

    private mutating func u(_ v: UInt64, _ n: Int) { for i in 0..<n { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    private mutating func global(_ module: String, _ name: String) { bytes.append(0x63); bytes += Array("\(module)\n\(name)\n".utf8) }

    public mutating func write(_ v: Value) {
        switch v {
        case .none: bytes.append(0x4E)
        case .bool(let b): bytes.append(b ? 0x88 : 0x89)
        case .int(let i):
            if (0..<256).contains(i) { bytes.append(0x4B); u(UInt64(i), 1) }
            else if (0..<65536).contains(i) { bytes.append(0x4D); u(UInt64(i), 2) }
            else if Int(Int32.min)...Int(Int32.max) ~= i { bytes.append(0x4A); u(UInt64(UInt32(bitPattern: Int32(i))), 4) }
            else { bytes += [0x8A, 8]; u(UInt64(bitPattern: Int64(i)), 8) }
        case .float(let d):
            bytes.append(0x47)
            let b = d.bitPattern
            for i in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt64(i)))) }
        case .string(let s):
            let utf8 = Array(s.utf8)
            bytes.append(0x58); u(UInt64(utf8.count), 4); bytes += utf8
        case .tuple(let items):
            bytes.append(0x28); items.forEach { write($0) }; bytes.append(0x74)
        case .list(let items):
            bytes.append(0x5D)
            if !items.isEmpty { bytes.append(0x28); items.forEach { write($0) }; bytes.append(0x65) }
        case .dict(let entries, let ordered):
            if ordered { global("collections", "OrderedDict"); bytes += [0x29, 0x52] } else { bytes.append(0x7D) }
            if !entries.isEmpty {
                bytes.append(0x28)
                for (k, value) in entries { write(k); write(value) }
                bytes.append(0x75)
            }
        case .tensor(let key, let count, let shape):
            // _rebuild_tensor_v2(storage, 0, size, contiguous stride, False, OrderedDict())
            global("torch._utils", "_rebuild_tensor_v2")
            bytes.append(0x28)   // MARK: the arguments
            bytes.append(0x28)   // MARK: the persistent id ('storage', FloatStorage, key, 'cpu', count)
            write(.string("storage"))
            global("torch", "FloatStorage")
            write(.string(key)); write(.string("cpu")); write(.int(count))
            bytes.append(0x74)
            bytes.append(0x51)   // BINPERSID
            write(.int(0))
            write(.tuple(shape.map { .int($0) }))
            var strides: [Int] = [], s = 1
            for n in shape.reversed() { strides.insert(s, at: 0); s *= n }
            write(.tuple(strides.map { .int($0) }))
            write(.bool(false))
            write(.dict([], ordered: true))
            bytes.append(0x74)
            bytes.append(0x52)
        }
    }

    public mutating func finish() -> [UInt8] { bytes.append(0x2E); return bytes }
}
