import AlexNetCore
import AlexNetInterop
import AlexNetTraining
import XCTest

final class SGDTests: XCTestCase {
    /// Sets every element of every parameter (or gradient) through the store's own layout, so that
    /// the tests do not depend on how it pads tensors: element k of the flattened list of
    /// parameters gets `value(k)`.
    func fill(_ store: ParameterStore, grad: Bool = false, _ value: (Int) -> Float) {
        var k = 0
        for e in store.entries {
            let values = (0..<e.count).map { i in value(k + i) }
            k += e.count
            values.withUnsafeBufferPointer { v in
                if grad { store.grads.write(v, at: e.offset) } else { (store.values.pointer + e.offset).update(from: v.baseAddress!, count: e.count) }
            }
        }
    }

    /// Every parameter's elements, in the store's order.
    func flat(_ store: ParameterStore) -> [Float] { store.names.flatMap { (try? store.tensor($0).data) ?? [] } }

    /// Runs SGD on a fixed sequence of gradients with the given learning rates.
    func run(_ rule: UpdateRule, rates: [Float]) -> [Float] {
        let store = ParameterStore([("w", [3]), ("b", [2])])
        let start: [Float] = [0.5, -1, 2, 0.1, 0.2]
        fill(store) { start[$0] }
        let sgd = SGD(for: store, learningRate: rates[0], momentum: 0.9, weightDecay: 5e-4, rule: rule)
        for (t, lr) in rates.enumerated() {
            fill(store, grad: true) { Float($0 % 5) * 0.3 - 0.5 + Float(t) * 0.1 }
            sgd.learningRate = lr
            sgd.step(store)
        }
        return flat(store)
    }

    /// The two update rules (docs/DESIGN.md, Optimiser) in float64, written from the formulas
    /// alone: the reference the float32 optimiser is checked against (the golden files hold
    /// PyTorch's rule only, so the paper's was otherwise compared with nothing but itself).
    func reference(_ rule: UpdateRule, w0: [Double], grads: (Int) -> [Double], rates: [Double],
                   momentum mu: Double, weightDecay wd: Double) -> [Double] {
        var w = w0, v = [Double](repeating: 0, count: w0.count)
        for (t, lr) in rates.enumerated() {
            let g = grads(t)
            for i in w.indices {
                switch rule {
                case .pytorch:
                    let d = g[i] + wd * w[i]
                    v[i] = t == 0 ? d : mu * v[i] + d
                    w[i] -= lr * v[i]
                case .paper:
                    v[i] = mu * v[i] - wd * lr * w[i] - lr * g[i]
                    w[i] += v[i]
                }
            }
        }
        return w
    }

    /// Both rules against the float64 reference, over steps whose learning rate changes twice
    /// (where the rules differ), on a store of several tensors split across workers.
    func testRulesMatchAFloat64Reference() throws {
        let store = ParameterStore([("a.weight", [37, 41]), ("a.bias", [37]), ("b.weight", [300, 201]), ("b.bias", [3])])
        let n = store.parameterCount
        var rng = RandomGenerator(seed: 11)
        let w0 = (0..<n).map { _ in Double(rng.normal()) * 0.05 }
        let gradients = (0..<6).map { _ in (0..<n).map { _ in Double(rng.normal()) * 0.01 } }
        let rates: [Double] = [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001]
        for rule in UpdateRule.allCases {
            fill(store) { Float(w0[$0]) }
            let sgd = SGD(for: store, learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4, rule: rule, workers: 3)
            for (t, lr) in rates.enumerated() {
                fill(store, grad: true) { Float(gradients[t][$0]) }
                sgd.learningRate = Float(lr)
                sgd.step(store)
            }
            // The float32 inputs, so that the comparison measures the update's arithmetic only.
            let expected = reference(rule, w0: w0.map { Double(Float($0)) }, grads: { gradients[$0].map { Double(Float($0)) } },
                                     rates: rates.map { Double(Float($0)) }, momentum: Double(Float(0.9)), weightDecay: Double(Float(5e-4)))
            let ours = flat(store)
            var num = 0.0, den = 0.0, moved = 0.0
            for i in 0..<n {
                num += (Double(ours[i]) - expected[i]) * (Double(ours[i]) - expected[i])
                den += expected[i] * expected[i]
                moved += (expected[i] - w0[i]) * (expected[i] - w0[i])
            }
            XCTAssertLessThan((num / den).squareRoot(), 1e-6, "\(rule): relative error against float64")
            // The error is small next to how far the weights moved, not only next to the weights.
            XCTAssertLessThan((num / moved).squareRoot(), 1e-3, "\(rule): error relative to the update")
        }
    }

    func testRulesAgreeWhileLearningRateIsConstant() {
        let a = run(.pytorch, rates: [0.01, 0.01, 0.01, 0.01])
        let b = run(.paper, rates: [0.01, 0.01, 0.01, 0.01])
        XCTAssertLessThan(Tensor.relativeError(a, b), 1e-6)
    }

    func testRulesDifferAfterTheLearningRateChanges() {
        let a = run(.pytorch, rates: [0.01, 0.01, 0.001, 0.001])
        let b = run(.paper, rates: [0.01, 0.01, 0.001, 0.001])
        XCTAssertGreaterThan(Tensor.relativeError(a, b), 1e-4)
    }

    func testPyTorchRuleByHand() {
        // w = 0.5, g = −0.5 (+0.1 on step 2), wd = 5e-4, μ = 0.9, lr = 0.01.
        let w0: Float = 0.5
        let g1 = -0.5 + 5e-4 * w0
        let w1 = w0 - 0.01 * g1
        let g2 = -0.4 + 5e-4 * w1
        let v2 = 0.9 * g1 + g2
        let w2 = w1 - 0.01 * v2
        XCTAssertEqual(run(.pytorch, rates: [0.01, 0.01])[0], w2, accuracy: 1e-7)
    }

    /// Momentum saved to a safetensors file and restored gives the same next update as never stopping.
    func testMomentumStateRoundTripsThroughAFile() throws {
        func store() -> ParameterStore {
            let s = ParameterStore([("w", [4]), ("b", [2])])
            let start: [Float] = [0.5, -1, 2, 3, 0.1, 0.2]
            fill(s) { start[$0] }
            return s
        }
        func setGrads(_ s: ParameterStore, _ t: Float) { fill(s, grad: true) { Float($0 % 3) - 1 + t } }
        let a = store()
        let original = SGD(for: a, learningRate: 0.1)
        setGrads(a, 0); original.step(a)
        var writer = SafetensorsWriter(metadata: ["sgd_steps": "\(original.steps)"])
        for (name, t) in original.state(a) { writer.add(name, t) }
        for e in a.entries { writer.add(e.name, try a.tensor(e.name)) }
        let path = try Paths.temporaryDirectory().appendingPathComponent("ckpt.safetensors").path
        try writer.write(to: path)

        let file = try SafetensorsFile(path: path)
        let b = store()
        for e in b.entries { try b.set(e.name, try file.tensor(e.name)) }
        let resumed = SGD(for: b, learningRate: 0.1)
        let momentum = Dictionary(uniqueKeysWithValues: try file.names.filter { $0.hasPrefix("momentum.") }.map { ($0, try file.tensor($0)) })
        try resumed.restore(momentum, steps: Int(file.metadata["sgd_steps"]!)!, parameters: b)

        setGrads(a, 0.5); original.step(a)
        setGrads(b, 0.5); resumed.step(b)
        XCTAssertEqual(try a.tensor("w"), try b.tensor("w"))
        XCTAssertEqual(try a.tensor("b"), try b.tensor("b"))
        // A fresh optimiser (no momentum) would have moved differently.
        let c = store()
        let fresh = SGD(for: c, learningRate: 0.1)
        setGrads(c, 0); fresh.step(c)
        let restarted = SGD(for: c, learningRate: 0.1)
        setGrads(c, 0.5); restarted.step(c)
        XCTAssertNotEqual(try a.tensor("w"), try c.tensor("w"))

        XCTAssertThrowsError(try resumed.restore([:], steps: 1, parameters: b)) { XCTAssertTrue("\($0)".contains("momentum.w")) }
        XCTAssertThrowsError(try resumed.restore(["momentum.w": Tensor(zeros: [3]), "momentum.b": Tensor(zeros: [2])], steps: 1, parameters: b))
    }

    /// A bf16 run keeps gradients and momentum in bfloat16: each step widens them, computes in
    /// float32 and stores the momentum rounded to nearest even, and the weights move by the
    /// stored (rounded) momentum. Checked bit for bit against that recipe written out here, for
    /// both rules, with a learning-rate change, across workers.
    func testBFloat16MomentumFollowsItsRecipeBitForBit() throws {
        let shapes: [(name: String, shape: [Int])] = [("a.weight", [37, 41]), ("a.bias", [37]), ("b.weight", [300, 201])]
        var rng = RandomGenerator(seed: 5)
        let n = shapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let w0 = (0..<n).map { _ in rng.normal() * 0.05 }
        let gradients = (0..<4).map { _ in (0..<n).map { _ in rng.normal() * 0.01 } }
        let rates: [Float] = [0.01, 0.01, 0.001, 0.001]
        func round(_ x: Float) -> Float { float(bfloat16: bfloat16Bits(x)) }
        for rule in UpdateRule.allCases {
            let store = ParameterStore(shapes, gradientFormat: .bfloat16)
            fill(store) { w0[$0] }
            let sgd = SGD(for: store, momentum: 0.9, weightDecay: 5e-4, rule: rule, workers: 3)
            XCTAssertEqual(sgd.velocity.format, .bfloat16)
            var w = w0, v = [Float](repeating: 0, count: n)
            for (t, lr) in rates.enumerated() {
                fill(store, grad: true) { gradients[t][$0] }
                sgd.learningRate = lr
                XCTAssertTrue(sgd.step(store))
                for i in 0..<n {
                    let g = round(gradients[t][i])
                    switch rule {
                    case .pytorch:
                        let d = g + 5e-4 * w[i]
                        v[i] = round(t == 0 ? d : 0.9 * v[i] + d)
                        w[i] = w[i] - lr * v[i]
                    case .paper:
                        v[i] = round(0.9 * v[i] - 5e-4 * lr * w[i] - lr * g)
                        w[i] = w[i] + v[i]
                    }
                }
            }
            XCTAssertEqual(flat(store), w, "\(rule): weights")
            let momentum = sgd.state(store).flatMap(\.1.data)
            XCTAssertEqual(momentum, v, "\(rule): momentum")
            // The recipe is not the float32 update: the rounding is visible.
            XCTAssertNotEqual(flat(store), run32(rule, shapes: shapes, w0: w0, gradients: gradients, rates: rates))
        }
    }

    /// The same steps with float32 gradients and momentum.
    func run32(_ rule: UpdateRule, shapes: [(name: String, shape: [Int])], w0: [Float], gradients: [[Float]], rates: [Float]) -> [Float] {
        let store = ParameterStore(shapes)
        fill(store) { w0[$0] }
        let sgd = SGD(for: store, momentum: 0.9, weightDecay: 5e-4, rule: rule)
        for (t, lr) in rates.enumerated() {
            fill(store, grad: true) { gradients[t][$0] }
            sgd.learningRate = lr
            sgd.step(store)
        }
        return flat(store)
    }

    /// bfloat16 momentum saved as float32 (widened exactly) and restored continues bit for bit; a
    /// NaN in a bfloat16 gradient reaches the weights and is reported by the step.
    func testBFloat16MomentumResumesExactlyAndNaNIsSeen() throws {
        func store() -> ParameterStore {
            let s = ParameterStore([("w", [4]), ("b", [2])], gradientFormat: .bfloat16)
            fill(s) { [0.5, -1, 2, 3, 0.1, 0.2][$0] }
            return s
        }
        let a = store(), b = store()
        let original = SGD(for: a, learningRate: 0.1)
        fill(a, grad: true) { Float($0) * 0.37 - 1 }
        original.step(a)
        for e in a.entries { try b.set(e.name, try a.tensor(e.name)) }
        let resumed = SGD(for: b, learningRate: 0.1)
        try resumed.restore(Dictionary(uniqueKeysWithValues: original.state(a)), steps: original.steps, parameters: b)
        for (s, o) in [(a, original), (b, resumed)] { fill(s, grad: true) { Float($0) * 0.11 + 0.3 }; o.step(s) }
        XCTAssertEqual(flat(a), flat(b))
        XCTAssertEqual(original.state(a).map(\.1), resumed.state(b).map(\.1))
        fill(a, grad: true) { $0 == 3 ? .nan : 0 }
        XCTAssertFalse(original.step(a))
        XCTAssertEqual(a.nonFiniteOrigin()?.name, "w")
        XCTAssertEqual(a.nonFiniteOrigin()?.gradient, true)
    }
}
