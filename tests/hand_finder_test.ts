/**
 * The hand finder's two models together (`src/app/keypoints.ts`, `src/app/registration.ts`):
 * which hand the handedness model says decides which image the keypoint model sees, and a
 * keypoint checkpoint folder round-trips both models, still loads without a handedness model
 * (an older folder) and names the file and key of what is wrong with it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CONFIGS } from "../src/model/configs.ts";
import { BoneAgeNet } from "../src/model/network.ts";
import {
  copyKeypointCheckpoint,
  type HandFinder,
  KEYPOINT_FILES,
  loadKeypointModel,
  predictHandedness,
  predictKeypoints,
  saveKeypointCheckpoint,
} from "../src/app/keypoints.ts";
import { findHands } from "../src/app/registration.ts";
import { type ImageSet, mirroredImageSet } from "../src/data/dataset.ts";
import { mirrorAffine } from "../src/ops/augment.ts";
import { gpuTest, rng } from "./helpers.ts";

const NORMALIZATION = { pixelMean: 0.3, pixelStd: 0.2 };

/** `n` smooth random images of side `size`, none of them symmetric. */
function randomSet(n: number, size: number): ImageSet {
  const r = rng(11);
  const images = new Uint8Array(n * size * size);
  for (let i = 0; i < n; i++) {
    const [fx, fy, phase] = [1 + 4 * r(), 1 + 4 * r(), 6 * r()];
    for (let p = 0; p < size * size; p++) {
      const x = (p % size) / size, y = Math.floor(p / size) / size;
      const v = 0.5 + 0.25 * Math.sin(fx * 6.3 * x + phase) * Math.cos(fy * 4.1 * y) + 0.2 * x;
      images[i * size * size + p] = Math.round(255 * Math.min(1, Math.max(0, v)));
    }
  }
  return {
    size,
    ids: Array.from({ length: n }, (_, i) => `r${i}`),
    images,
    male: new Uint8Array(n),
    boneage: new Float32Array(n),
  };
}

gpuTest("findHands looks for the points of a right hand on its mirror image", async (e) => {
  const keypoints = new BoneAgeNet(e, CONFIGS.keypoints, 5);
  const set = randomSet(8, 96);
  const rows = set.ids.map((_, i) => i);
  const meta = { normalization: NORMALIZATION } as HandFinder["meta"];
  const handedness = {
    model: new BoneAgeNet(e, CONFIGS.handedness, 4),
    normalization: NORMALIZATION,
  };
  const finder: HandFinder = { model: keypoints, meta, handedness };
  const sides = await predictHandedness(handedness, set, rows);
  // Both answers occur among these images, so both ways through findHands are taken.
  assert.ok(sides.some((v) => v < 0) && sides.some((v) => v >= 0), `${sides}`);
  // A mirror image gets exactly the opposite answer.
  const opposite = await predictHandedness(handedness, mirroredImageSet(set), rows);
  opposite.forEach((v, i) => assert.ok(Math.abs(v + sides[i]) < 1e-5, `${v} vs ${sides[i]}`));

  const asIs = await predictKeypoints(keypoints, NORMALIZATION, set, rows);
  const flipped = await predictKeypoints(keypoints, NORMALIZATION, set, rows, {
    pre: mirrorAffine(96),
  });
  const close = (got: number[], want: ArrayLike<number>, what: string) =>
    got.forEach((v, k) => assert.ok(Math.abs(v - want[k]) < 1e-5, `${what}: ${v} vs ${want[k]}`));
  const hands = await findHands(finder, set);
  hands.forEach((h, i) => {
    assert.equal(h.mirrored, sides[i] < 0);
    assert.ok(Math.abs(h.handedness - sides[i]) < 1e-6);
    const want = sides[i] < 0 ? flipped : asIs;
    close(h.points, want.subarray(6 * i, 6 * i + 6), `row ${i}`);
  });
  // The resampler's mirror is the pixels' mirror: the mirrored images are looked at exactly
  // as the images themselves, whichever hand each is taken for.
  const right = await findHands(finder, mirroredImageSet(set));
  right.forEach((h, i) => close(h.points, hands[i].points, `mirrored row ${i}`));
  // Without a handedness model (an older folder) every hand is a left hand.
  const older = await findHands({ model: keypoints, meta, handedness: null }, set);
  assert.deepEqual(older.map((h) => [h.mirrored, h.handedness]), rows.map(() => [false, 1]));
});

gpuTest(
  "a keypoint checkpoint folder keeps both models and says what is wrong with it",
  async (e) => {
    const dir = await Deno.makeTempDir({ prefix: "bone-age-hand-finder-" });
    try {
      const keypoints = new BoneAgeNet(e, CONFIGS.keypoints, 5);
      const handedness = new BoneAgeNet(e, CONFIGS.handedness, 6);
      const part = { normalization: NORMALIZATION, settings: {}, evaluation: {} };
      const folder = join(dir, "kp");
      await saveKeypointCheckpoint(folder, keypoints, part, { model: handedness, meta: part });
      const set = randomSet(2, 64);
      const want = await predictHandedness(
        { model: handedness, normalization: NORMALIZATION },
        set,
        [
          0,
          1,
        ],
      );
      const loaded = await loadKeypointModel(e, folder);
      assert.deepEqual(await predictHandedness(loaded.handedness!, set, [0, 1]), want);

      // A bone-age run carries a copy of all three files.
      const copy = join(dir, "run", "keypoints");
      await copyKeypointCheckpoint(folder, copy);
      const names = [...Deno.readDirSync(copy)].map((f) => f.name).sort();
      assert.deepEqual(names, Object.values(KEYPOINT_FILES).sort());

      const metaPath = join(folder, KEYPOINT_FILES.meta);
      const json = JSON.parse(await Deno.readTextFile(metaPath));
      const rejects = async (text: string, ...parts: string[]) => {
        await Deno.writeTextFile(metaPath, text);
        await assert.rejects(loadKeypointModel(e, folder), (err: Error) => {
          for (const p of parts) assert.ok(err.message.includes(p), `${err.message} lacks ${p}`);
          return true;
        });
      };
      await rejects("{ not json", metaPath, "is not JSON");
      await rejects(
        JSON.stringify({ ...json, handedness: { ...json.handedness, config: CONFIGS.keypoints } }),
        metaPath,
        "handedness.config differs",
        "deno task keypoints",
      );
      await rejects(
        JSON.stringify({ ...json, handedness: { ...json.handedness, normalization: {} } }),
        "handedness.normalization.pixelMean",
      );
      await Deno.writeTextFile(metaPath, JSON.stringify(json));
      await Deno.remove(join(folder, KEYPOINT_FILES.handedness));
      await rejects(JSON.stringify(json), join(folder, KEYPOINT_FILES.handedness), "not found");
      // A folder written before the handedness model: it loads, and takes every hand as left.
      const { handedness: _, ...older } = json;
      await Deno.writeTextFile(metaPath, JSON.stringify(older));
      assert.equal((await loadKeypointModel(e, folder)).handedness, null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
