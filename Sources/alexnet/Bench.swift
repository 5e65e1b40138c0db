import AlexNet
import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the full-size network on random data.")
    func run() throws {}
}
