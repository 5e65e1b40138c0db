import AlexNetCore
import CMPI
import Foundation

/// This process's place in a data-parallel run: its rank among `size` processes that mpirun
/// started, and among the `localSize` on its machine. Without mpirun it is one process alone
/// (`single`), MPI is never initialised, and every collective is the identity, so the same binary
/// runs with no launcher.
///
/// Collectives go through the CMPI shim (Open MPI's C API). Each is started without blocking and
/// waited on by polling with a deadline (`timeout`): a rank that died or stopped answering ends
/// the wait with an error naming the operation instead of a silent hang. Errors are MPI's own
/// codes turned into `CommunicationError`s; whoever catches one ends the job (`abort`).
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Rank and count among the processes on this machine (MPI's shared-memory split).
    public let localRank: Int
    public let localSize: Int
    /// Seconds a collective may wait for the other ranks before the run is declared stuck.
    public var timeout: Double
    private let usesMPI: Bool
    private var finalized = false

    public var isRoot: Bool { rank == 0 }

    private init(rank: Int, size: Int, localRank: Int, localSize: Int, timeout: Double, usesMPI: Bool) {
        (self.rank, self.size, self.localRank, self.localSize, self.timeout, self.usesMPI) = (rank, size, localRank, localSize, timeout, usesMPI)
    }

    /// One process alone.
    public static func single() -> Communicator {
        Communicator(rank: 0, size: 1, localRank: 0, localSize: 1, timeout: .infinity, usesMPI: false)
    }

    /// Whether mpirun started this process (Open MPI's or PMIx's environment).
    public static var launchedByMPI: Bool { alexnet_mpi_launched() != 0 }

    /// Joins the job mpirun started, or returns `single()` when none did.
    public static func join(timeout: Double = 600) throws -> Communicator {
        guard launchedByMPI else { return single() }
        var rank: Int32 = 0, size: Int32 = 1, localRank: Int32 = 0, localSize: Int32 = 1
        let rc = alexnet_mpi_init(&rank, &size, &localRank, &localSize)
        guard rc == 0 else { throw CommunicationError(rank: nil, operation: "MPI_Init_thread", reason: Self.describe(rc)) }
        return Communicator(rank: Int(rank), size: Int(size), localRank: Int(localRank), localSize: Int(localSize),
                            timeout: timeout, usesMPI: true)
    }

    /// A collective in flight: complete when `Communicator.test` or `wait` says so.
    public final class Pending {
        let operation: String
        var handles: [UnsafeMutableRawPointer]
        init(_ operation: String, _ handles: [UnsafeMutableRawPointer]) { (self.operation, self.handles) = (operation, handles) }
    }

    /// MPI counts are 32-bit: larger buffers go as several operations.
    private static let chunk = 1 << 30

    /// Starts summing `count` floats at `data` over all ranks, in place.
    public func startSum(_ data: UnsafeMutablePointer<Float>, count: Int, what: String) throws -> Pending {
        try start("allreduce of \(what)", count) { offset, n, handle in alexnet_mpi_iallreduce_sum_floats(data + offset, n, handle) }
    }

    /// Starts rank `root`'s `count` floats at `data` on their way to every rank.
    public func startBroadcast(_ data: UnsafeMutablePointer<Float>, count: Int, from root: Int = 0, what: String) throws -> Pending {
        try start("broadcast of \(what)", count) { offset, n, handle in alexnet_mpi_ibroadcast_floats(data + offset, n, Int32(root), handle) }
    }

    /// Starts summing elements offset..<offset+count of `buffer` over all ranks, in place, in
    /// the buffer's format (bfloat16 sums are rounded to nearest even).
    public func startSum(_ buffer: NumberBuffer, offset: Int, count: Int, what: String) throws -> Pending {
        if let f = buffer.floats { return try startSum(f + offset, count: count, what: what) }
        let h = buffer.halves! + offset
        return try start("allreduce of \(what)", count) { o, n, handle in alexnet_mpi_iallreduce_sum_bfloat16(h + o, n, handle) }
    }

    /// Rank `root`'s `buffer` (floats or bfloat16) to every rank, and waits.
    public func broadcastAndWait(_ buffer: NumberBuffer, from root: Int = 0, what: String) throws {
        if let f = buffer.floats { return try broadcastAndWait(f, count: buffer.count, from: root, what: what) }
        let h = buffer.halves!
        try wait(try start("broadcast of \(what)", buffer.count) { o, n, handle in
            alexnet_mpi_ibroadcast_bfloat16(h + o, n, Int32(root), handle)
        })
    }

    private func start(_ operation: String, _ count: Int,
                       _ call: (Int, Int32, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32) throws -> Pending {
        guard usesMPI, size > 1 else { return Pending(operation, []) }
        var handles: [UnsafeMutableRawPointer] = []
        var offset = 0
        repeat {
            let n = min(Self.chunk, count - offset)
            var handle: UnsafeMutableRawPointer?
            let rc = call(offset, Int32(n), &handle)
            guard rc == 0, let handle else { throw fail(operation, Self.describe(rc)) }
            handles.append(handle)
            offset += n
        } while offset < count
        return Pending(operation, handles)
    }

    /// Whether `pending` is complete; also lets MPI progress it (call between other work).
    @discardableResult
    public func test(_ pending: Pending) throws -> Bool {
        while let handle = pending.handles.first {
            var done: Int32 = 0
            let rc = alexnet_mpi_test(handle, &done)
            guard rc == 0 else { throw fail(pending.operation, Self.describe(rc)) }
            guard done != 0 else { return false }
            pending.handles.removeFirst()
        }
        return true
    }

    /// Waits for `pending`, at most `timeout` seconds.
    public func wait(_ pending: Pending) throws {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(min(timeout, 1e9) * 1e9)
        var spins = 0
        while try !test(pending) {
            if DispatchTime.now().uptimeNanoseconds > deadline {
                throw fail(pending.operation, "no answer from the other ranks within \(Int(timeout)) s (training.collective_timeout)")
            }
            spins += 1
            if spins > 1000 { usleep(100) }
        }
    }

    /// Sums `values` over all ranks, in place, and waits.
    public func sum(_ values: inout [Double], what: String) throws {
        guard usesMPI, size > 1, !values.isEmpty else { return }
        // Started and waited for inside one access, so the array's storage stays put meanwhile.
        try values.withUnsafeMutableBufferPointer { buffer in
            var handle: UnsafeMutableRawPointer?
            let rc = alexnet_mpi_iallreduce_sum_doubles(buffer.baseAddress!, Int32(buffer.count), &handle)
            guard rc == 0, let handle else { throw fail("allreduce of \(what)", Self.describe(rc)) }
            try wait(Pending("allreduce of \(what)", [handle]))
        }
    }

    public func sumAndWait(_ data: UnsafeMutablePointer<Float>, count: Int, what: String) throws {
        try wait(try startSum(data, count: count, what: what))
    }

    public func broadcastAndWait(_ data: UnsafeMutablePointer<Float>, count: Int, from root: Int = 0, what: String) throws {
        try wait(try startBroadcast(data, count: count, from: root, what: what))
    }

    /// Ends every rank of the job with `code` (a single process just exits).
    public func abort(code: Int32) -> Never {
        if usesMPI { alexnet_mpi_abort(code) }
        exit(code)
    }

    /// Leaves the job cleanly (after the last collective).
    public func finalize() {
        guard usesMPI, !finalized else { return }
        finalized = true
        _ = alexnet_mpi_finalize()
    }

    private func fail(_ operation: String, _ reason: String) -> CommunicationError {
        CommunicationError(rank: rank, operation: operation, reason: reason)
    }

    static func describe(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        alexnet_mpi_error_string(code, &buffer, Int32(buffer.count))
        return String(cString: buffer)
    }
}

/// An MPI call that failed or timed out, with the rank it failed on.
public struct CommunicationError: DescribedError, Sendable {
    public let rank: Int?
    public let operation: String
    public let reason: String
    public var description: String { (rank.map { "rank \($0): " } ?? "") + "\(operation) failed: \(reason)" }
}
