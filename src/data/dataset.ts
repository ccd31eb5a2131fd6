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
}
