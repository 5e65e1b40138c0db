import Foundation

/// A request to stop training at the next step boundary: Ctrl-C (SIGINT) or SIGTERM, or a caller
/// (tests stop a run mid-epoch this way). The trainer checks it after every step, writes a
/// checkpoint and stops; a second signal quits at once (the last complete checkpoint stays
/// intact, since checkpoints are renamed into place only when whole).
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [DispatchSourceSignal] = []

    public init() {}

    /// Routes SIGINT and SIGTERM here instead of ending the process.
    public func installSignalHandlers(onFirst: @escaping @Sendable (Int32) -> Void = { _ in }) {
        for number in [SIGINT, SIGTERM] {
            Glibc.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if self.signal != nil { _exit(128 + number) }
                self.request(number)
                onFirst(number)
            }
            source.resume()
            sources.append(source)
        }
    }

    public func request(_ signal: Int32 = SIGINT) {
        lock.lock(); defer { lock.unlock() }
        if received == nil { received = signal }
    }

    /// The signal that asked to stop, if any.
    public var signal: Int32? {
        lock.lock(); defer { lock.unlock() }
        return received
    }
}
