// GnuSpeech (articulatory tube-model synthesis) for training data, one process for many texts.
//
// stdin: one JSON job per line: {"text", "out", "tract_cm", "pitch_st", "breathiness",
// "tn", "tempo", "intonation"}; the speaker is the male preset with these settings replaced.
// GnuSpeech's own random intonation and pitch drift are off (they are seeded from the clock):
// the same job gives the same audio; "intonation" scales the pitch movements instead.
// stdout: "ok <out>" per job written, in order. Any failure exits non-zero with a one-line
// message on stderr.
import { writeFile } from 'node:fs/promises'
import readline from 'node:readline'

import init from '@echogarden/gnuspeech-wasm/wasm/gnuspeech.js'

const DATA = '/data/en'
const VOICE = 'edge'

// The settings text with key's value replaced by value, or by value(old) if it is a function.
function setting(text, key, value) {
  const re = new RegExp(`^(${key}\\s*=\\s*)(\\S+)`, 'm')
  if (!re.test(text)) throw new Error(`GnuSpeech file has no setting ${key}`)
  return text.replace(re, (_, prefix, old) => prefix + (typeof value === 'function' ? value(old) : value))
}

function cString(m, s) {
  const bytes = new TextEncoder().encode(s + '\0')
  const ptr = m._malloc(bytes.length)
  m.HEAPU8.set(bytes, ptr)
  return ptr
}

const m = await init()
const read = (name) => new TextDecoder().decode(m.FS.readFile(`${DATA}/${name}`))
const maleVoice = read('voice_male.txt')
const controlModel = read('trm_control_model.txt')
// 22.05 kHz is plenty for 16 kHz training audio and halves the tube simulation's work.
m.FS.writeFile(`${DATA}/trm.txt`, setting(read('trm.txt'), 'output_rate', '22050.0'))

const lines = readline.createInterface({ input: process.stdin })
try {
  for await (const line of lines) {
    if (!line.trim()) continue
    const job = JSON.parse(line)
    let voice = setting(maleVoice, 'vocal_tract_length', job.tract_cm.toFixed(2))
    voice = setting(voice, 'reference_glottal_pitch', job.pitch_st.toFixed(2))
    voice = setting(voice, 'breathiness', job.breathiness.toFixed(2))
    voice = setting(voice, 'glottal_pulse_tn_min', job.tn.toFixed(1))
    voice = setting(voice, 'glottal_pulse_tn_max', job.tn.toFixed(1))
    m.FS.writeFile(`${DATA}/voice_${VOICE}.txt`, voice)
    let control = setting(controlModel, 'voice_name', VOICE)
    control = setting(control, 'tempo', job.tempo.toFixed(3))
    control = setting(control, 'random_intonation', '0')
    control = setting(control, 'intonation_drift', '0')
    for (const key of ['pretonic_range', 'pretonic_lift', 'tonic_range', 'tonic_movement']) {
      control = setting(control, key, (own) => (Number(own) * job.intonation).toFixed(2))
    }
    m.FS.writeFile(`${DATA}/trm_control_model.txt`, control)
    const args = [job.text, '/out.wav', DATA, '/out-params.txt'].map((s) => cString(m, s))
    m._GnuSpeech_synthesizeToFile(...args, 0)
    args.forEach((p) => m._free(p))
    await writeFile(job.out, m.FS.readFile('/out.wav'))
    process.stdout.write(`ok ${job.out}\n`)
  }
} catch (err) {
  process.stderr.write(`gnuspeech: ${err.message ?? err}\n`)
  process.exit(1)
}
