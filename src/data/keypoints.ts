/**
 * Hand keypoint labels: a CSV of `id,width,height,box_x,box_y,box_w,box_h` and then
 * `<name>_x,<name>_y,<name>_v` per point, in pixels of the original radiograph (`width` x
 * `height`, origin top-left), as in the COCO-WholeBody hand layout. Registration needs three
 * of them ({@link KEYPOINTS}); they are read as fractions of the original frame, which is what
 * any resized copy of the radiograph shares (the 100 px RSNA copies were squashed to squares).
 *
 * @module
 */
import { KEYPOINTS } from "./recipe.ts";
import { readCsv } from "./layout.ts";
import { DataError } from "./report.ts";

/** One labelled radiograph. */
export interface KeypointRow {
  /** Image id (file name without extension). */
  id: string;
  /** 1-based CSV line. */
  line: number;
  /** Size of the radiograph the coordinates were placed on. */
  width: number;
  height: number;
  /** x, y of each of {@link KEYPOINTS} as fractions (0..1) of the original frame. */
  points: Float64Array;
}

/** A keypoint CSV's usable rows and the rows left out, with line and reason. */
export interface KeypointTable {
  rows: KeypointRow[];
  skipped: { line: number; id: string; reason: string }[];
}

/** Size limit of a declared radiograph side, as for decoded images. */
const MAX_SIDE = 65535;

/**
 * Reads a keypoint CSV. A missing column is a {@link DataError} naming the file; a row with a
 * bad size, a point outside its radiograph, an unlabelled point (`v` other than 2) or a
 * repeated id is left out and listed with its line.
 */
export async function readKeypoints(path: string): Promise<KeypointTable> {
  const csv = await readCsv(path);
  const header = csv.header.map((h) => h.trim().toLowerCase());
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new DataError(`missing column ${name}; header is "${csv.header}"`, path, 1);
    return i;
  };
  const idCol = col("id"), wCol = col("width"), hCol = col("height");
  const pointCols = KEYPOINTS.map((k) => [col(`${k}_x`), col(`${k}_y`), col(`${k}_v`)]);
  const rows: KeypointRow[] = [];
  const skipped: KeypointTable["skipped"] = [];
  const seen = new Set<string>();
  for (const { fields, line } of csv.records) {
    const id = (fields[idCol] ?? "").replace(/\.(png|jpe?g)$/i, "");
    const skip = (reason: string) => skipped.push({ line, id, reason });
    const width = Number(fields[wCol]), height = Number(fields[hCol]);
    if (id === "") {
      skip("empty id");
      continue;
    }
    if (seen.has(id)) {
      skip("duplicate id");
      continue;
    }
    if (![width, height].every((v) => Number.isInteger(v) && v >= 1 && v <= MAX_SIDE)) {
      skip(`size "${fields[wCol]}x${fields[hCol]}" is not two whole numbers 1..${MAX_SIDE}`);
      continue;
    }
    const points = new Float64Array(2 * KEYPOINTS.length);
    const bad = KEYPOINTS.find((_, k) => {
      const [xc, yc, vc] = pointCols[k];
      const x = Number(fields[xc]), y = Number(fields[yc]);
      const inside = fields[xc] !== "" && fields[yc] !== "" && x >= 0 && x <= width && y >= 0 &&
        y <= height;
      points[2 * k] = x / width;
      points[2 * k + 1] = y / height;
      return !inside || fields[vc] !== "2";
    });
    if (bad !== undefined) {
      skip(`${bad} is not a labelled point inside the ${width}x${height} radiograph`);
      continue;
    }
    seen.add(id);
    rows.push({ id, line, width, height, points });
  }
  return { rows, skipped };
}
