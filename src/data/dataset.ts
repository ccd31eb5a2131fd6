/**
 * The in-memory form of a preprocessed data set: what the cache loads, the loader batches
 * and the augmentation kernel reads.
 *
 * @module
 */

/** Letterboxed 8-bit gray images of one square size, with their labels. */
export interface ImageSet {
  /** Side of every image in pixels (the model's input size, e.g. 96). */
  size: number;
  /** Image ids (file names without extension), one per image. */
  ids: string[];
  /** `ids.length * size * size` bytes, image after image, rows top to bottom. */
  images: Uint8Array;
  /** 1 for male, 0 for female, one per image. */
  male: Uint8Array;
  /** Bone age in months, one per image; NaN where the set carries no label (test CSV). */
  boneage: Float32Array;
  /**
   * Per image, the registration that brings its hand to the canonical pose: 6 values, the
   * affine from model-input to stored pixel coordinates (`src/app/registration.ts`). Absent for
   * an unregistered set.
   */
  registration?: Float32Array;
}

/** The rows `rows` of `set`, in that order, as a set of their own (pixels copied). */
export function subsetImageSet(set: ImageSet, rows: readonly number[]): ImageSet {
  const plane = set.size * set.size;
  const images = new Uint8Array(rows.length * plane);
  rows.forEach((r, j) => images.set(set.images.subarray(r * plane, (r + 1) * plane), j * plane));
  return {
    size: set.size,
    ids: rows.map((r) => set.ids[r]),
    images,
    male: Uint8Array.from(rows, (r) => set.male[r]),
    boneage: Float32Array.from(rows, (r) => set.boneage[r]),
    registration: set.registration &&
      Float32Array.from(
        { length: rows.length * 6 },
        (_, k) => set.registration![6 * rows[k / 6 | 0] + k % 6],
      ),
  };
}

/**
 * `set` with each image mirrored left to right, what its hands look like as the other hand,
 * and no registration.
 */
export function mirroredImageSet(set: ImageSet): ImageSet {
  const S = set.size;
  const images = set.images.map((_, i) => {
    const x = i % S;
    return set.images[i - x + S - 1 - x];
  });
  return { ...set, images, registration: undefined };
}
