// The 3D preview of scans and designs (STL, PLY, OBJ) with three.js. Loaded on demand (a chunk of
// its own), so the case room does not pay for it until a mesh is shown. Renders on demand —
// when the view changes — not in a loop, so an open preview costs nothing while nobody touches it.

import {
  BufferGeometry,
  Color,
  DirectionalLight,
  DoubleSide,
  Float32BufferAttribute,
  Group,
  HemisphereLight,
  Mesh,
  MeshStandardMaterial,
  PerspectiveCamera,
  Scene,
  Vector3,
  WebGLRenderer,
} from 'three';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
import { OBJLoader } from 'three/examples/jsm/loaders/OBJLoader.js';
import { PLYLoader } from 'three/examples/jsm/loaders/PLYLoader.js';
import { STLLoader } from 'three/examples/jsm/loaders/STLLoader.js';

export type MeshFormat = 'stl' | 'ply' | 'obj';

export function formatOf(contentType: string): MeshFormat | null {
  if (contentType === 'model/stl') return 'stl';
  if (contentType === 'model/ply') return 'ply';
  if (contentType === 'model/obj') return 'obj';
  return null;
}

export interface MeshStats {
  triangles: number;
  /** Bounding box size in the file's units (millimetres for dental scans). */
  size: [number, number, number];
}

/** Parses the file into one geometry (OBJ groups are merged by drawing them all). */
export function parse(buf: ArrayBuffer, format: MeshFormat): BufferGeometry[] {
  if (format === 'stl') return [withNormals(new STLLoader().parse(buf))];
  if (format === 'ply') return [withNormals(new PLYLoader().parse(buf))];
  const group: Group = new OBJLoader().parse(new TextDecoder().decode(buf));
  const out: BufferGeometry[] = [];
  group.traverse((o) => {
    if ((o as Mesh).isMesh) out.push(withNormals((o as Mesh).geometry as BufferGeometry));
  });
  return out;
}

/** Scanners sometimes write zero normals (STL) or none (PLY point data): compute them then. */
function withNormals(g: BufferGeometry): BufferGeometry {
  const n = g.getAttribute('normal');
  let usable = !!n;
  if (n) {
    usable = false;
    const count = Math.min(n.count, 300);
    for (let i = 0; i < count && !usable; i++) if (n.getX(i) || n.getY(i) || n.getZ(i)) usable = true;
  }
  if (!usable) g.computeVertexNormals();
  return g;
}

export interface Viewer {
  stats: MeshStats;
  resetView(): void;
  dispose(): void;
}

/** Shows the geometries on the canvas, fitted to the view, with orbit controls. */
export function show(canvas: HTMLCanvasElement, geometries: BufferGeometry[]): Viewer {
  // preserveDrawingBuffer: what is shown can be read back (a snapshot; the tests check pixels).
  const renderer = new WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(devicePixelRatio || 1, 2));
  const scene = new Scene();
  scene.background = new Color(0xeef1f5);

  // Centre the model at the origin; measure it.
  const all = new Group();
  let triangles = 0;
  const material = new MeshStandardMaterial({ color: 0xe8dfcc, roughness: 0.55, metalness: 0.05, side: DoubleSide });
  for (const g of geometries) {
    const hasColors = !!g.getAttribute('color');
    const mesh = new Mesh(g, hasColors ? new MeshStandardMaterial({ vertexColors: true, roughness: 0.6, side: DoubleSide }) : material);
    all.add(mesh);
    const pos = g.getAttribute('position') as Float32BufferAttribute;
    triangles += g.index ? g.index.count / 3 : pos.count / 3;
  }
  for (const g of geometries) g.computeBoundingBox();
  const box = geometries[0].boundingBox!.clone();
  for (const g of geometries.slice(1)) box.union(g.boundingBox!);
  const center = box.getCenter(new Vector3());
  const size = box.getSize(new Vector3());
  all.position.sub(center);
  scene.add(all);
  const radius = Math.max(size.length() / 2, 1e-6);

  // Dental files are usually Z-up (occlusal plane horizontal): look from the front, a little above.
  const camera = new PerspectiveCamera(35, 1, radius / 100, radius * 100);
  camera.up.set(0, 0, 1);
  scene.add(camera);
  scene.add(new HemisphereLight(0xffffff, 0x8d8478, 1.4));
  const key = new DirectionalLight(0xffffff, 2.2);
  key.position.set(1, 1.5, 2); // relative to the camera: the light follows the view
  camera.add(key);

  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = false;
  controls.addEventListener('change', render);

  function fit() {
    const dist = radius / Math.sin(((camera.fov / 2) * Math.PI) / 180);
    camera.position.copy(new Vector3(0.35, -0.8, 0.5).normalize().multiplyScalar(dist * 1.05));
    controls.target.set(0, 0, 0);
    camera.lookAt(0, 0, 0);
    controls.update();
  }

  function resize() {
    const w = canvas.clientWidth || 300;
    const h = canvas.clientHeight || 240;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    render();
  }

  function render() {
    renderer.render(scene, camera);
  }

  const observer = new ResizeObserver(resize);
  observer.observe(canvas);
  fit();
  resize();

  return {
    stats: { triangles, size: [size.x, size.y, size.z] },
    resetView() {
      fit();
      render();
    },
    dispose() {
      observer.disconnect();
      controls.dispose();
      for (const g of geometries) g.dispose();
      all.traverse((o) => {
        if ((o as Mesh).isMesh) ((o as Mesh).material as MeshStandardMaterial).dispose();
      });
      renderer.dispose();
      // Browsers allow few WebGL contexts at once: give this one back now.
      renderer.forceContextLoss();
    },
  };
}
