import CDNNL

/// A plain row-major single-precision matrix multiply through oneDNN's GEMM (`dnnl_sgemm`),
/// threaded by the engine's OpenMP threads: `alexnet bench` times a large one as the second
/// estimate of the machine's peak, beside the FMA kernel (a tuned GEMM shows what oneDNN's
/// convolutions and inner products can reach).
public enum MatrixMultiply {
    /// C (m×n) ← A (m×k) · B (k×n), all row-major and densely packed; with `transposingA`, A is
    /// stored as its transpose (k×m); with `accumulating`, C ← C + A · B.
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, transposingA: Bool = false,
                                b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, accumulating: Bool = false) throws {
        guard m > 0, n > 0, k > 0 else {
            throw DNNLError(call: "dnnl_sgemm", context: "multiplying \(m)×\(k) by \(k)×\(n)", status: "sizes must be positive")
        }
        let no = CChar(UInt8(ascii: "N")), yes = CChar(UInt8(ascii: "T"))
        try check(dnnl_sgemm(transposingA ? yes : no, no, dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), 1, a,
                             dnnl_dim_t(transposingA ? m : k), b, dnnl_dim_t(n), accumulating ? 1 : 0, c, dnnl_dim_t(n)),
                  "dnnl_sgemm", "multiplying \(m)×\(k) by \(k)×\(n)")
    }
}
