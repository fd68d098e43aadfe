// Browser side: renders the scene with three.js and follows it live over a WebSocket.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

const GEOMETRIES = {
  box: () => new THREE.BoxGeometry(1, 1, 1),
  sphere: () => new THREE.SphereGeometry(0.5, 48, 24),
  cylinder: () => new THREE.CylinderGeometry(0.5, 0.5, 1, 48),
  cone: () => new THREE.ConeGeometry(0.5, 1, 48),
  torus: () => new THREE.TorusGeometry(0.4, 0.15, 24, 64),
  // Lies flat, so a default plane is a floor rather than a wall.
  plane: () => new THREE.PlaneGeometry(1, 1).rotateX(-Math.PI / 2),
};

const ui = {
  count: document.getElementById('object-count'),
  list: document.getElementById('objects'),
  status: document.getElementById('status'),
  notice: document.getElementById('notice'),
};

const view = createView();
connect(0);

/** The three.js side; null when WebGL is unavailable, so the overlay still follows the scene. */
function createView() {
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true });
  } catch (error) {
    console.error('3d-scene: WebGL is unavailable', error);
    showNotice('WebGL is unavailable in this browser: the object list still updates.');
    return null;
  }
  renderer.setPixelRatio(window.devicePixelRatio);
  renderer.setSize(window.innerWidth, window.innerHeight);
  document.body.prepend(renderer.domElement);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color('#1b2029');
  scene.add(new THREE.HemisphereLight('#ffffff', '#3a4250', 1.6));
  const sun = new THREE.DirectionalLight('#ffffff', 2.2);
  sun.position.set(5, 10, 7);
  scene.add(sun);
  scene.add(new THREE.GridHelper(20, 20, '#5a6575', '#323a46'));

  const camera = new THREE.PerspectiveCamera(50, window.innerWidth / window.innerHeight, 0.1, 1000);
  camera.position.set(6, 5, 9);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;

  window.addEventListener('resize', () => {
    camera.aspect = window.innerWidth / window.innerHeight;
    camera.updateProjectionMatrix();
    renderer.setSize(window.innerWidth, window.innerHeight);
  });
  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
  });
  return { scene, meshes: new Map() };
}

/** Makes the meshes match the scene: adds, changes and removes only what differs. */
function syncMeshes(state) {
  if (!view) return;
  const seen = new Set();
  for (const object of state.objects) {
    seen.add(object.id);
    let mesh = view.meshes.get(object.id);
    if (mesh && mesh.userData.shape !== object.shape) {
      removeMesh(object.id);
      mesh = undefined;
    }
    if (!mesh) {
      const material = new THREE.MeshStandardMaterial({ roughness: 0.45, side: THREE.DoubleSide });
      mesh = new THREE.Mesh(GEOMETRIES[object.shape](), material);
      mesh.userData.shape = object.shape;
      view.meshes.set(object.id, mesh);
      view.scene.add(mesh);
    }
    mesh.name = object.name;
    mesh.position.fromArray(object.position);
    mesh.rotation.set(...object.rotation.map((degrees) => THREE.MathUtils.degToRad(degrees)));
    mesh.scale.fromArray(object.scale);
    mesh.material.color.set(object.color);
  }
  for (const id of view.meshes.keys()) if (!seen.has(id)) removeMesh(id);
}

function removeMesh(id) {
  const mesh = view.meshes.get(id);
  view.scene.remove(mesh);
  mesh.geometry.dispose();
  mesh.material.dispose();
  view.meshes.delete(id);
}

function renderOverlay(state) {
  ui.count.textContent = String(state.objects.length);
  ui.list.replaceChildren(
    ...state.objects.map((object) => {
      const item = document.createElement('li');
      item.textContent = `${object.name} (${object.shape})`;
      item.dataset.id = object.id;
      item.style.setProperty('--swatch', object.color);
      return item;
    }),
  );
}

/** Opens the WebSocket next to this page (ws:// or wss://) and reconnects with backoff when it drops. */
function connect(attempt) {
  const url = new URL('ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(url);
  socket.addEventListener('open', () => {
    attempt = 0;
    setStatus('live', 'live');
  });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type !== 'scene') return;
    syncMeshes(message.scene);
    renderOverlay(message.scene);
  });
  socket.addEventListener('close', () => {
    setStatus('offline', 'offline, reconnecting…');
    setTimeout(() => connect(attempt + 1), Math.min(500 * 2 ** attempt, 10_000));
  });
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}
