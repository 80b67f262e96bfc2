// Tile-based CPU rasteriser of 2D Gaussian splats with gsplat 1.5.3's rules (classic mode), forward and
// analytic backward. Built at run time by feat2gs/render/cpu_backend.py (torch.utils.cpp_extension.load).
//
// Conventions (all tensors contiguous, CPU, float32 or float64; C cameras, N Gaussians, D channels;
// per-Gaussian vectors are stored component-major, "SoA", as torch produces them cheaply):
//   means2d (2,C,N) pixel coords, pixel (i,j) has centre (j+0.5, i+0.5); conics (3,C,N) = inverse 2D
//   covariance (a, b, c) = (xx, xy, yy); colors (D,C,N); opacities (C,N); depths (C,N) (sort key);
//   radii (2,C,N) int32 (0 = culled); background (C,D). Images are written channels-first (C,D,H,W).
//   Gradients come back in the layouts of the inputs.
//
// Forward, per image:
//   binning   each Gaussian with both radii > 0 touches the tiles [floor(u/ts - rx/ts), ceil(u/ts + rx/ts))
//             (clamped to the grid) along x, the same along y -- gsplat's isect_tiles;
//   order     each tile's list runs front to back: by the depth's bit pattern (gsplat's sort key), ties by
//             Gaussian index;
//   composite pixels of a tile front to back: sigma = 0.5 (a dx^2 + c dy^2) + b dx dy with
//             d = mean - pixel centre, alpha = min(0.999, o exp(-sigma)), skipped if sigma < 0 or
//             alpha < 1/255; a pixel stops before the Gaussian that would bring T to <= 1e-4;
//             out = sum alpha T c + T_final * background.
//   Inside a tile, a Gaussian is only evaluated on the bounding box of the ellipse sigma <= ln(255 o)
//   (widened against rounding, see footprint_extent); outside it the alpha test fails anyway.
//   Saved for the backward: T_final per pixel, the index (in its tile's list) of the last Gaussian drawn
//   there, and the tile lists.
//
// Backward (like gsplat's): per pixel back to front from T_final, recovering T by division.
// Determinism: every tile writes the gradient of each entry of its list to a slot of its own (one slot per
// Gaussian-tile intersection, no atomics); slots are then summed per Gaussian in a fixed order. Results are
// bit-identical from run to run, for any number of threads.

#include <ATen/core/Tensor.h>  // the few ATen ops below by name: a fifth less compile time than ATen.h
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

template <typename T> struct Consts;
template <> struct Consts<float> {
    static constexpr float alpha_min = 1.f / 255.f;
    static constexpr float alpha_max = 0.999f;
    static constexpr float t_min = 1e-4f;
};
template <> struct Consts<double> {
    static constexpr double alpha_min = 1.0 / 255.0;
    static constexpr double alpha_max = 0.999;
    static constexpr double t_min = 1e-4;
};

// Light per-Gaussian loops run in parallel only above this many items: below it the fork/join costs more
// than it saves, and each barrier is a chance to wait for a descheduled thread on a busy machine.
constexpr int64_t kParallelMin = 200000;

// Tiles per image and geometry of one tile.
struct Grid {
    int64_t W, H, ts, tx, ty;
    int64_t tiles() const { return tx * ty; }
};

// Result of binning all C images: per tile (global id = c * tiles + tile) a range of sorted entries.
struct Bins {
    at::Tensor tile_offsets;   // (C*tiles + 1) int64
    at::Tensor flat_ids;       // (n_isects) int32 Gaussian index within its camera, sorted per tile
    at::Tensor isect_slot;     // (n_isects) int64 slot of the entry in Gaussian-major order
    at::Tensor gauss_offsets;  // (C*N + 1) int64 first slot of each Gaussian
    at::Tensor packed;         // (n_isects, 8 + D) per entry: mean x, y, conic a, b, c, opacity, footprint
                               // half-sizes hx, hy (see footprint_extent), colours -- read sequentially
};

constexpr int64_t kPackHead = 8;  // packed columns before the colours
constexpr int64_t kMaxTile = 64;  // eval_box's float row index is exact for boxes of up to 64 x 64 pixels

// ----------------------------------------------------------------------------------------------- binning

inline int64_t clamp_tile(double v, int64_t hi) {
    if (!(v > 0)) return 0;  // also NaN
    if (v >= static_cast<double>(hi)) return hi;
    return static_cast<int64_t>(v);
}

template <typename T>
inline void tile_rect(T mx, T my, int32_t rx_, int32_t ry_, const Grid& g, int32_t* rect) {
    const T ts = static_cast<T>(g.ts);
    const T cx = mx / ts, cy = my / ts;
    const T rx = static_cast<T>(rx_) / ts, ry = static_cast<T>(ry_) / ts;
    rect[0] = static_cast<int32_t>(clamp_tile(std::floor(cx - rx), g.tx));
    rect[1] = static_cast<int32_t>(clamp_tile(std::floor(cy - ry), g.ty));
    rect[2] = static_cast<int32_t>(clamp_tile(std::ceil(cx + rx), g.tx));
    rect[3] = static_cast<int32_t>(clamp_tile(std::ceil(cy + ry), g.ty));
}

// Half-sizes (hx, hy) of the box around the mean outside of which alpha < 1/255 for sure.
// alpha >= 1/255 needs sigma <= s = ln(255 o), i.e. d inside the ellipse d^T Q d <= 2 s, Q = [[a, b], [b, c]],
// whose box has half-sizes sqrt(2 s c / det), sqrt(2 s a / det). s is widened by
// 1e-5 (1 + s) (1 + k) / (1 - k), k = |b| / sqrt(ac): the float error of sigma is below
// ~5e-7 s (1 + k) / (1 - k) there (and that of exp ~1e-7). The box gets another 1e-3 px in footprint_box.
// Returns (-1, -1) when no pixel can pass (o < 1/255, non-finite mean) and (inf, inf) for degenerate
// conics (then the whole tile is evaluated).
inline void footprint_extent(double mx, double my, double a, double b, double c, double o, double* ext) {
    const double o255 = o * 255.0;
    if (!(o255 >= 1.0 - 1e-6) || !std::isfinite(mx) || !std::isfinite(my)) {
        ext[0] = ext[1] = -1.0;
        return;
    }
    const double det = a * c - b * b;
    const double kappa = (a > 0 && c > 0) ? std::fabs(b) / std::sqrt(a * c) : 1.0;
    if (!(det > 0) || !std::isfinite(det) || !(kappa < 1.0 - 1e-6)) {
        ext[0] = ext[1] = INFINITY;
        return;
    }
    const double s = std::log(std::max(o255, 1.0));
    const double s2 = 2.0 * (s + 1e-5 * (1.0 + s) * (1.0 + kappa) / (1.0 - kappa));
    ext[0] = std::sqrt(s2 * c / det);
    ext[1] = std::sqrt(s2 * a / det);
}

// Unsigned integer with the bit pattern of T.
template <typename T> struct Bits;
template <> struct Bits<float> { using U = uint32_t; };
template <> struct Bits<double> { using U = uint64_t; };

// Indices of the visible Gaussians of one camera ordered by depth bits, ties by index: LSD radix sort
// (8-bit digits, stable) of the index-ordered list.
template <typename T>
void depth_order(const T* dep, const int32_t* rx, const int32_t* ry, int64_t N, std::vector<int32_t>& order,
                 std::vector<int32_t>& tmp) {
    using U = typename Bits<T>::U;
    order.clear();
    for (int64_t i = 0; i < N; ++i)
        if (rx[i] > 0 && ry[i] > 0) order.push_back(static_cast<int32_t>(i));
    const int64_t n = static_cast<int64_t>(order.size());
    if (n < 2) return;
    tmp.resize(n);
    std::vector<U> key(n);
    for (int64_t shift = 0; shift < static_cast<int64_t>(8 * sizeof(U)); shift += 8) {
        int64_t count[257] = {0};
        for (int64_t q = 0; q < n; ++q) {
            std::memcpy(&key[q], dep + order[q], sizeof(U));
            ++count[((key[q] >> shift) & 0xFF) + 1];
        }
        if (count[((key[0] >> shift) & 0xFF) + 1] == n) continue;  // all in one bucket: no-op
        for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
        for (int64_t q = 0; q < n; ++q) tmp[count[(key[q] >> shift) & 0xFF]++] = order[q];
        order.swap(tmp);
    }
}

// Bins the Gaussians of every image into tiles (gsplat's isect_tiles + sort). Each entry also keeps its
// "slot": its position in Gaussian-major order (Gaussian g of camera c owns the slots
// [gauss_offsets[c N + g], gauss_offsets[c N + g + 1]), one per tile of its rectangle, row-major).
template <typename T>
Bins bin_and_sort(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                  const at::Tensor& opacities, const at::Tensor& depths, const at::Tensor& radii, const Grid& g,
                  int nthreads) {
    const int64_t C = means2d.size(1), N = means2d.size(2), CN = C * N, D = colors.size(0);
    const T* m = means2d.data_ptr<T>();
    const T* cn = conics.data_ptr<T>();
    const T* col = colors.data_ptr<T>();
    const T* op = opacities.data_ptr<T>();
    const T* dep = depths.data_ptr<T>();
    const int32_t* rad = radii.data_ptr<int32_t>();
    const int64_t ntiles = C * g.tiles();

    std::vector<int32_t> rect(4 * CN, 0);
    std::vector<double> ext(2 * CN);
    at::Tensor gauss_offsets = at::empty({CN + 1}, at::kLong);
    int64_t* goff = gauss_offsets.data_ptr<int64_t>();
    goff[0] = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (CN > kParallelMin)
    for (int64_t i = 0; i < CN; ++i) {
        int64_t n = 0;
        if (rad[i] > 0 && rad[CN + i] > 0) {
            int32_t* r = rect.data() + 4 * i;
            tile_rect<T>(m[i], m[CN + i], rad[i], rad[CN + i], g, r);
            n = static_cast<int64_t>(r[2] - r[0]) * (r[3] - r[1]);
            footprint_extent(m[i], m[CN + i], cn[i], cn[CN + i], cn[2 * CN + i], op[i], ext.data() + 2 * i);
        } else {
            ext[2 * i] = ext[2 * i + 1] = -1.0;
        }
        goff[i + 1] = n;
    }
    for (int64_t i = 0; i < CN; ++i) goff[i + 1] += goff[i];
    const int64_t n_isects = goff[CN];

    at::Tensor tile_offsets = at::zeros({ntiles + 1}, at::kLong);
    at::Tensor flat_ids = at::empty({n_isects}, at::kInt);
    at::Tensor isect_slot = at::empty({n_isects}, at::kLong);
    int64_t* toff = tile_offsets.data_ptr<int64_t>();
    int32_t* fid = flat_ids.data_ptr<int32_t>();
    int64_t* slot = isect_slot.data_ptr<int64_t>();

    for (int64_t i = 0; i < CN; ++i) {  // entries per tile
        if (goff[i + 1] == goff[i]) continue;
        const int32_t* r = rect.data() + 4 * i;
        const int64_t base = (i / N) * g.tiles();
        for (int64_t y = r[1]; y < r[3]; ++y)
            for (int64_t x = r[0]; x < r[2]; ++x) ++toff[base + y * g.tx + x + 1];
    }
    for (int64_t t = 0; t < ntiles; ++t) toff[t + 1] += toff[t];

    // per camera: visit Gaussians front to back and append them to their tiles (lists come out sorted)
#pragma omp parallel num_threads(nthreads) if (C > 1)
    {
        std::vector<int32_t> order, tmp;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < C; ++c) {
            depth_order<T>(dep + c * N, rad + c * N, rad + CN + c * N, N, order, tmp);
            const int64_t base = c * g.tiles();
            std::vector<int64_t> cursor(toff + base, toff + base + g.tiles());
            for (const int32_t gid : order) {
                const int64_t i = c * N + gid;
                const int32_t* r = rect.data() + 4 * i;
                int64_t s = goff[i];
                for (int64_t y = r[1]; y < r[3]; ++y)
                    for (int64_t x = r[0]; x < r[2]; ++x, ++s) {
                        const int64_t pos = cursor[y * g.tx + x]++;
                        fid[pos] = gid;
                        slot[pos] = s;
                    }
            }
        }
    }

    // pack what the pixel loops read, in list order
    const int64_t P = kPackHead + D;
    at::Tensor packed = at::empty({n_isects, P}, means2d.options());
    T* pk = packed.data_ptr<T>();
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n_isects > kParallelMin)
    for (int64_t t = 0; t < ntiles; ++t) {
        const int64_t cam = t / g.tiles();
        for (int64_t k = toff[t]; k < toff[t + 1]; ++k) {
            const int64_t gi = cam * N + fid[k];
            T* row = pk + k * P;
            row[0] = m[gi];
            row[1] = m[CN + gi];
            row[2] = cn[gi];
            row[3] = cn[CN + gi];
            row[4] = cn[2 * CN + gi];
            row[5] = op[gi];
            for (int q = 0; q < 2; ++q) {  // round the half-sizes up so the box stays a superset
                const double h = ext[2 * gi + q];
                T hq = static_cast<T>(h);
                if (static_cast<double>(hq) < h) hq = std::nextafter(hq, std::numeric_limits<T>::infinity());
                row[6 + q] = hq;
            }
            for (int64_t d = 0; d < D; ++d) row[kPackHead + d] = col[d * CN + gi];
        }
    }
    return Bins{tile_offsets, flat_ids, isect_slot, gauss_offsets, packed};
}

// ----------------------------------------------------------------------------------------------- pixels

// One splat as seen by the pixel loops (from a packed row).
template <typename T> struct Splat {
    T mx, my, a, b, c, o, hx, hy;
    const T* col;
};

template <typename T> inline Splat<T> load_splat(const T* row) {
    return Splat<T>{row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row + kPackHead};
}

// [lo, hi) of the pixels whose centre k + 0.5 lies in [c_lo - 1e-3, c_hi + 1e-3], within [k_min, k_max).
// Values are clamped into [k_min, k_max] (>= 0) first, so truncation is floor.
inline void pixel_range(double c_lo, double c_hi, int64_t k_min, int64_t k_max, int64_t& lo, int64_t& hi) {
    constexpr double margin = 1e-3;
    const double kmin = static_cast<double>(k_min), kmax = static_cast<double>(k_max);
    const double l = std::min(std::max(c_lo - margin - 0.5, kmin), kmax);  // first pixel: ceil(l)
    const double h = std::min(std::max(c_hi + margin + 0.5, kmin), kmax);  // end: floor(h)
    lo = static_cast<int64_t>(l);
    lo += static_cast<double>(lo) < l;
    hi = std::max(lo, static_cast<int64_t>(h));
}

// The box of pixels of the tile [px0, px1) x [py0, py1) that a splat may reach: rows [i0, i1), cols [j0, j1).
struct Box {
    int64_t i0, i1, j0, j1;
    int64_t w() const { return j1 - j0; }
    int64_t size() const { return (i1 - i0) * (j1 - j0); }
};

template <typename T>
inline Box footprint_box(const Splat<T>& sp, int64_t px0, int64_t px1, int64_t py0, int64_t py1) {
    Box bx{0, 0, 0, 0};
    if (sp.hx < 0) return bx;
    if (std::isinf(sp.hx)) return Box{py0, py1, px0, px1};
    const double mx = sp.mx, my = sp.my, hx = sp.hx, hy = sp.hy;
    pixel_range(my - hy, my + hy, py0, py1, bx.i0, bx.i1);
    pixel_range(mx - hx, mx + hx, px0, px1, bx.j0, bx.j1);
    return bx;
}

// exp(-x) for float, vectorisable: round-to-nearest range reduction -x = n ln2 + r, |r| <= ln2 / 2, degree-7
// Taylor polynomial (truncation error < 1e-8 relative), scaled by 2^n through the exponent bits. x is clamped
// to [-80, 80] (exp(-80) times an opacity is far below 1/255; the kernel skips sigma < 0 anyway). ~1 ulp.
inline float exp_neg(float x) {
    const float y = -std::min(std::max(x, -80.f), 80.f);
    const float n = (y * 1.44269504088896341f + 12582912.f) - 12582912.f;  // nearest integer to y / ln2
    float r = y - n * 0.693359375f;                                         // Cody-Waite split of ln2
    r = r + n * 2.12194440e-4f;
    float p = 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}
inline double exp_neg(double x) { return std::exp(-x); }

// sigma, exp(-sigma) and alpha = min(0.999, o exp(-sigma)) over a box, row-major into sig/vis/al. Shared by the
// forward and the backward, so both see exactly the same alphas. The flat loop (row = floor((q + 0.5) / w),
// exact in float for boxes of up to kMaxTile^2 pixels) vectorises whatever the box shape.
template <typename T> inline void eval_box(const Splat<T>& sp, const Box& bx, T* sig, T* vis, T* al) {
    const int64_t n = bx.size();
    const T w = static_cast<T>(bx.w());
    const T inv_w = T(1) / w;
    const T x0 = static_cast<T>(bx.j0) + T(0.5), y0 = static_cast<T>(bx.i0) + T(0.5);
#pragma omp simd
    for (int64_t q = 0; q < n; ++q) {
        const T fq = static_cast<T>(q);
        const T row = static_cast<T>(static_cast<int32_t>((fq + T(0.5)) * inv_w));
        const T dx = sp.mx - (x0 + (fq - row * w));
        const T dy = sp.my - (y0 + row);
        const T s = T(0.5) * (sp.a * dx * dx + sp.c * dy * dy) + sp.b * dx * dy;
        const T e = exp_neg(s);
        sig[q] = s;
        vis[q] = e;
        al[q] = std::min(Consts<T>::alpha_max, sp.o * e);
    }
}

// Channel count known at compile time for the common cases (DC > 0), at run time otherwise (DC == 0).
template <int DC> inline int64_t channels(int64_t d) { return DC > 0 ? DC : d; }

template <typename T, int DC>
void forward_tiles(const T* bg, int64_t C, int64_t D_, const Grid& g, const Bins& bins, T* o_img, T* o_alpha,
                   T* o_T, int32_t* o_last, int nthreads) {
    using K = Consts<T>;
    const int64_t D = channels<DC>(D_);
    const int64_t HW = g.H * g.W;
    const int64_t ntiles = C * g.tiles();
    const int64_t* toff = bins.tile_offsets.data_ptr<int64_t>();
    const T* pk = bins.packed.data_ptr<T>();
    const int64_t P = kPackHead + D;

#pragma omp parallel num_threads(nthreads) if (ntiles > 1)
    {
        const int64_t np_max = g.ts * g.ts;
        std::vector<T> Tr(np_max), acc(np_max * D), sig(np_max), vis(np_max), al(np_max);
        std::vector<int32_t> lst(np_max);
        std::vector<uint8_t> done(np_max);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; ++t) {
            const int64_t cam = t / g.tiles(), tid = t % g.tiles();
            const int64_t px0 = (tid % g.tx) * g.ts, py0 = (tid / g.tx) * g.ts;
            const int64_t px1 = std::min(px0 + g.ts, g.W), py1 = std::min(py0 + g.ts, g.H);
            const int64_t pw = px1 - px0, np = pw * (py1 - py0);
            std::fill(Tr.begin(), Tr.begin() + np, T(1));
            std::fill(acc.begin(), acc.begin() + np * D, T(0));
            std::fill(lst.begin(), lst.begin() + np, -1);
            std::fill(done.begin(), done.begin() + np, 0);
            int64_t ndone = 0;
            const int64_t b = toff[t], e = toff[t + 1];
            for (int64_t k = b; k < e && ndone < np; ++k) {
                const Splat<T> sp = load_splat(pk + k * P);
                const Box bx = footprint_box(sp, px0, px1, py0, py1);
                if (bx.size() == 0) continue;
                eval_box(sp, bx, sig.data(), vis.data(), al.data());
                int64_t q = 0;
                for (int64_t i = bx.i0; i < bx.i1; ++i) {
                    const int64_t prow = (i - py0) * pw - px0;
                    for (int64_t j = bx.j0; j < bx.j1; ++j, ++q) {
                        const int64_t p = prow + j;
                        if (done[p] || sig[q] < T(0) || al[q] < K::alpha_min) continue;
                        const T next_T = Tr[p] * (T(1) - al[q]);
                        if (next_T <= K::t_min) {
                            done[p] = 1;
                            ++ndone;
                            continue;
                        }
                        const T w = al[q] * Tr[p];
                        T* ap = acc.data() + p * D;
                        for (int64_t d = 0; d < D; ++d) ap[d] += sp.col[d] * w;
                        Tr[p] = next_T;
                        lst[p] = static_cast<int32_t>(k - b);
                    }
                }
            }
            for (int64_t i = py0; i < py1; ++i)
                for (int64_t j = px0; j < px1; ++j) {
                    const int64_t p = (i - py0) * pw + (j - px0);
                    const int64_t pix = cam * HW + i * g.W + j;
                    o_T[pix] = Tr[p];
                    o_alpha[pix] = T(1) - Tr[p];
                    o_last[pix] = lst[p];
                    for (int64_t d = 0; d < D; ++d)
                        o_img[(cam * D + d) * HW + i * g.W + j] = acc[p * D + d] + Tr[p] * bg[cam * D + d];
                }
        }
    }
}

template <typename T, int DC>
void backward_tiles(const T* bg, int64_t C, int64_t D_, const Grid& g, const Bins& bins, const T* iT,
                    const int32_t* ilast, const T* vimg, const T* valpha, T* rec, int nthreads) {
    using K = Consts<T>;
    const int64_t D = channels<DC>(D_);
    const int64_t R = 6 + D;
    const int64_t HW = g.H * g.W;
    const int64_t ntiles = C * g.tiles();
    const int64_t* toff = bins.tile_offsets.data_ptr<int64_t>();
    const int64_t* slot = bins.isect_slot.data_ptr<int64_t>();
    const T* pk = bins.packed.data_ptr<T>();
    const int64_t P = kPackHead + D;

#pragma omp parallel num_threads(nthreads) if (ntiles > 1)
    {
        const int64_t np_max = g.ts * g.ts;
        std::vector<T> Tr(np_max), Tf(np_max), buf(np_max * D), vc(np_max * D), va(np_max);
        std::vector<T> sig(np_max), vis(np_max), al(np_max), gcol(D);
        std::vector<int32_t> lst(np_max);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; ++t) {
            const int64_t cam = t / g.tiles(), tid = t % g.tiles();
            const int64_t px0 = (tid % g.tx) * g.ts, py0 = (tid / g.tx) * g.ts;
            const int64_t px1 = std::min(px0 + g.ts, g.W), py1 = std::min(py0 + g.ts, g.H);
            const int64_t pw = px1 - px0;
            const int64_t b = toff[t];
            int32_t kmax = -1;
            for (int64_t i = py0; i < py1; ++i)
                for (int64_t j = px0; j < px1; ++j) {
                    const int64_t p = (i - py0) * pw + (j - px0);
                    const int64_t pix = cam * HW + i * g.W + j;
                    Tr[p] = Tf[p] = iT[pix];
                    lst[p] = ilast[pix];
                    kmax = std::max(kmax, lst[p]);
                    T bd = 0;
                    for (int64_t d = 0; d < D; ++d) {
                        const T v = vimg[(cam * D + d) * HW + i * g.W + j];
                        vc[p * D + d] = v;
                        buf[p * D + d] = 0;
                        bd += bg[cam * D + d] * v;
                    }
                    // d loss / d alpha_k has the term T_final / (1 - alpha_k) (v_alpha - bg . v_out)
                    va[p] = valpha[pix] - bd;
                }
            for (int64_t kl = kmax; kl >= 0; --kl) {
                const int64_t k = b + kl;
                const Splat<T> sp = load_splat(pk + k * P);
                const Box bx = footprint_box(sp, px0, px1, py0, py1);
                if (bx.size() == 0) continue;
                eval_box(sp, bx, sig.data(), vis.data(), al.data());
                T gx = 0, gy = 0, ga = 0, gb = 0, gc = 0, go = 0;
                for (int64_t d = 0; d < D; ++d) gcol[d] = 0;
                bool touched = false;
                int64_t q = 0;
                for (int64_t i = bx.i0; i < bx.i1; ++i) {
                    const T dy = sp.my - (static_cast<T>(i) + T(0.5));
                    const int64_t prow = (i - py0) * pw - px0;
                    for (int64_t j = bx.j0; j < bx.j1; ++j, ++q) {
                        const int64_t p = prow + j;
                        if (kl > lst[p] || sig[q] < T(0) || al[q] < K::alpha_min) continue;
                        touched = true;
                        const T alpha = al[q];
                        const T ra = T(1) / (T(1) - alpha);
                        Tr[p] *= ra;
                        const T fac = alpha * Tr[p];
                        T v_al = Tf[p] * ra * va[p];
                        T* bp = buf.data() + p * D;
                        const T* vp = vc.data() + p * D;
                        for (int64_t d = 0; d < D; ++d) {
                            gcol[d] += fac * vp[d];
                            v_al += (sp.col[d] * Tr[p] - bp[d] * ra) * vp[d];
                            bp[d] += sp.col[d] * fac;
                        }
                        if (sp.o * vis[q] <= K::alpha_max) {
                            const T dx = sp.mx - (static_cast<T>(j) + T(0.5));
                            const T v_sig = -sp.o * vis[q] * v_al;
                            ga += T(0.5) * v_sig * dx * dx;
                            gb += v_sig * dx * dy;
                            gc += T(0.5) * v_sig * dy * dy;
                            gx += v_sig * (sp.a * dx + sp.b * dy);
                            gy += v_sig * (sp.b * dx + sp.c * dy);
                            go += vis[q] * v_al;
                        }
                    }
                }
                if (!touched) continue;
                T* r = rec + slot[k] * R;
                r[0] = gx; r[1] = gy; r[2] = ga; r[3] = gb; r[4] = gc; r[5] = go;
                for (int64_t d = 0; d < D; ++d) r[6 + d] = gcol[d];
            }
        }
    }
}

// Runs fn with std::integral_constant<int, D> for D = 3, 4 and <int, 0> (run-time count) otherwise.
template <typename F> void dispatch_channels(int64_t D, F&& fn) {
    if (D == 3) fn(std::integral_constant<int, 3>{});
    else if (D == 4) fn(std::integral_constant<int, 4>{});
    else fn(std::integral_constant<int, 0>{});
}

template <typename T>
void backward_impl(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                   const at::Tensor& opacities, const at::Tensor& background, const Grid& g, const Bins& bins,
                   const at::Tensor& t_final, const at::Tensor& last, const at::Tensor& v_out,
                   const at::Tensor& v_alpha, at::Tensor& v_means2d, at::Tensor& v_conics, at::Tensor& v_colors,
                   at::Tensor& v_opacities, int nthreads) {
    const int64_t C = means2d.size(1), N = means2d.size(2), D = colors.size(0);
    const int64_t R = 6 + D;  // per-entry record: mean x, y, conic a, b, c, opacity, colours
    const int64_t n_isects = bins.flat_ids.numel();
    std::vector<T> rec(n_isects * R, T(0));
    dispatch_channels(D, [&](auto dc) {
        backward_tiles<T, decltype(dc)::value>(background.data_ptr<T>(), C, D, g, bins, t_final.data_ptr<T>(),
                                               last.data_ptr<int32_t>(), v_out.data_ptr<T>(),
                                               v_alpha.data_ptr<T>(), rec.data(), nthreads);
    });

    // per Gaussian: sum its entries in slot order (tile order) in double -- fixed order, no atomics
    const int64_t* goff = bins.gauss_offsets.data_ptr<int64_t>();
    T* vm = v_means2d.data_ptr<T>();
    T* vcn = v_conics.data_ptr<T>();
    T* vcol = v_colors.data_ptr<T>();
    T* vop = v_opacities.data_ptr<T>();
    const int64_t CN = C * N;
#pragma omp parallel num_threads(nthreads) if (CN > kParallelMin)
    {
        std::vector<double> s(R);
#pragma omp for schedule(static)
        for (int64_t gi = 0; gi < CN; ++gi) {
            const int64_t e0 = goff[gi], e1 = goff[gi + 1];
            if (e0 == e1) continue;
            std::fill(s.begin(), s.end(), 0.0);
            for (int64_t e = e0; e < e1; ++e) {
                const T* r = rec.data() + e * R;
                for (int64_t q = 0; q < R; ++q) s[q] += r[q];
            }
            vm[gi] = static_cast<T>(s[0]);
            vm[CN + gi] = static_cast<T>(s[1]);
            vcn[gi] = static_cast<T>(s[2]);
            vcn[CN + gi] = static_cast<T>(s[3]);
            vcn[2 * CN + gi] = static_cast<T>(s[4]);
            vop[gi] = static_cast<T>(s[5]);
            for (int64_t d = 0; d < D; ++d) vcol[d * CN + gi] = static_cast<T>(s[6 + d]);
        }
    }
}

// ----------------------------------------------------------------------------------------------- entry points

void check_inputs(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                  const at::Tensor& opacities, const at::Tensor& depths, const at::Tensor& radii,
                  const at::Tensor& background) {
    TORCH_CHECK(means2d.dim() == 3 && means2d.size(0) == 2, "means2d must be (2, C, N)");
    const int64_t C = means2d.size(1), N = means2d.size(2);
    TORCH_CHECK(conics.sizes() == at::IntArrayRef({3, C, N}), "conics must be (3, C, N)");
    TORCH_CHECK(colors.dim() == 3 && colors.size(1) == C && colors.size(2) == N, "colors must be (D, C, N)");
    TORCH_CHECK(opacities.sizes() == at::IntArrayRef({C, N}), "opacities must be (C, N)");
    TORCH_CHECK(depths.sizes() == at::IntArrayRef({C, N}), "depths must be (C, N)");
    TORCH_CHECK(radii.sizes() == at::IntArrayRef({2, C, N}) && radii.scalar_type() == at::kInt,
                "radii must be (2, C, N) int32");
    TORCH_CHECK(background.sizes() == at::IntArrayRef({C, colors.size(0)}), "background must be (C, D)");
    for (const at::Tensor* t : {&means2d, &conics, &colors, &opacities, &depths, &radii, &background}) {
        TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "inputs must be contiguous CPU tensors");
    }
    for (const at::Tensor* t : {&conics, &colors, &opacities, &depths, &background}) {
        TORCH_CHECK(t->scalar_type() == means2d.scalar_type(), "inputs must share one floating dtype");
    }
    TORCH_CHECK(N < (int64_t(1) << 31), "too many Gaussians");
}

Grid make_grid(int64_t width, int64_t height, int64_t tile_size) {
    TORCH_CHECK(width > 0 && height > 0 && tile_size > 0, "bad image or tile size");
    TORCH_CHECK(tile_size <= kMaxTile, "tile_size must be at most ", kMaxTile);
    return Grid{width, height, tile_size, (width + tile_size - 1) / tile_size, (height + tile_size - 1) / tile_size};
}

// Returns [image (C,D,H,W), alpha (C,H,W), t_final (C,H,W), last (C,H,W) int32,
//          tile_offsets, flat_ids, isect_slot, gauss_offsets, packed].
std::vector<at::Tensor> rasterize_fwd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                                      const at::Tensor& opacities, const at::Tensor& depths,
                                      const at::Tensor& radii, const at::Tensor& background, int64_t width,
                                      int64_t height, int64_t tile_size) {
    check_inputs(means2d, conics, colors, opacities, depths, radii, background);
    const Grid g = make_grid(width, height, tile_size);
    const int64_t C = means2d.size(1), D = colors.size(0);
    const int nthreads = std::max(1, at::get_num_threads());
    const auto opts = means2d.options();
    at::Tensor out = at::empty({C, D, height, width}, opts);
    at::Tensor alpha = at::empty({C, height, width}, opts);
    at::Tensor t_final = at::empty({C, height, width}, opts);
    at::Tensor last = at::empty({C, height, width}, opts.dtype(at::kInt));
    Bins bins;
    AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_fwd", [&] {
        using T = scalar_t;
        bins = bin_and_sort<T>(means2d, conics, colors, opacities, depths, radii, g, nthreads);
        dispatch_channels(D, [&](auto dc) {
            forward_tiles<T, decltype(dc)::value>(background.data_ptr<T>(), C, D, g, bins, out.data_ptr<T>(),
                                                  alpha.data_ptr<T>(), t_final.data_ptr<T>(),
                                                  last.data_ptr<int32_t>(), nthreads);
        });
    });
    return {out, alpha, t_final, last, bins.tile_offsets, bins.flat_ids, bins.isect_slot, bins.gauss_offsets,
            bins.packed};
}

// Returns [v_means2d (2,C,N), v_conics (3,C,N), v_colors (D,C,N), v_opacities (C,N)].
std::vector<at::Tensor> rasterize_bwd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                                      const at::Tensor& opacities, const at::Tensor& background,
                                      const at::Tensor& t_final, const at::Tensor& last,
                                      const at::Tensor& tile_offsets, const at::Tensor& flat_ids,
                                      const at::Tensor& isect_slot, const at::Tensor& gauss_offsets,
                                      const at::Tensor& packed, const at::Tensor& v_out, const at::Tensor& v_alpha,
                                      int64_t width, int64_t height, int64_t tile_size) {
    const Grid g = make_grid(width, height, tile_size);
    const int64_t C = means2d.size(1), D = colors.size(0);
    TORCH_CHECK(v_out.sizes() == at::IntArrayRef({C, D, height, width}) && v_out.is_contiguous() &&
                    v_out.scalar_type() == means2d.scalar_type(), "v_out must be contiguous (C, D, H, W)");
    TORCH_CHECK(v_alpha.sizes() == at::IntArrayRef({C, height, width}) && v_alpha.is_contiguous() &&
                    v_alpha.scalar_type() == means2d.scalar_type(), "v_alpha must be contiguous (C, H, W)");
    const int nthreads = std::max(1, at::get_num_threads());
    at::Tensor v_means2d = at::zeros_like(means2d);
    at::Tensor v_conics = at::zeros_like(conics);
    at::Tensor v_colors = at::zeros_like(colors);
    at::Tensor v_opacities = at::zeros_like(opacities);
    const Bins bins{tile_offsets, flat_ids, isect_slot, gauss_offsets, packed};
    AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_bwd", [&] {
        backward_impl<scalar_t>(means2d, conics, colors, opacities, background, g, bins, t_final, last, v_out,
                                v_alpha, v_means2d, v_conics, v_colors, v_opacities, nthreads);
    });
    return {v_means2d, v_conics, v_colors, v_opacities};
}

}  // namespace

TORCH_LIBRARY(feat2gs_render_cpu, m) {
    m.def("rasterize_fwd", &rasterize_fwd);
    m.def("rasterize_bwd", &rasterize_bwd);
}
