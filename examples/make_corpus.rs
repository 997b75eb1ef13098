//! Regenerates the SuccuLM corpus fixtures from a small, hand-written world (seeded, deterministic):
//!
//! * `fixtures/succulm_normal_sentence_pairs.json` — statement → follow-up statement,
//! * `fixtures/succulm_question_answer_pairs.json` — question → answer,
//! * `fixtures/succulm_probes.json` — the seed's 14 prompts and our fact probes,
//! * `fixtures/succulm_hidden_words.json` — words with a vector but no training sentence,
//! * `fixtures/background.txt` — the text the embeddings are computed from (it mentions the
//!   hidden words in the contexts of the character names).
//!
//! ```text
//! cargo run --release --example make_corpus [-- --seed 2024 --out fixtures]
//! cargo run --release --example make_embeddings     # then recompute the vectors
//! ```
//!
//! The world (`world.md`): ruby is a red boy succulent, winy a calm girl succulent who sometimes
//! blooms white flowers; they live and sleep in one pot by the window. The generator checks every
//! invariant the tests check (no probe inside a training sequence, lengths, hidden words unused)
//! and panics if one fails, so a bad edit never produces fixtures.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use succulm::fs::write_atomic;
use succulm::nn::generate::{
    seed_prompts_in_training as seed_in, seed_prompts_out_of_training as seed_out,
};
use succulm::study::cli::{self, Flags};
use succulm::text::probes::{Probe, ProbeGroup};
use succulm::tokenize;

const NORMAL_PAIRS: usize = 640;
const QA_PAIRS: usize = 480;
/// Tokens of `s1 + " " + s2`; with BOS and EOS the ids fit in 29.
const MAX_TOKENS: usize = 27;
const HIDDEN: [&str; 2] = ["sophia", "aloe"];

/// One of the two characters, with everything a template may need.
struct Who {
    n: &'static str,  // name
    o: &'static str,  // the other's name
    p: &'static str,  // he / she
    m: &'static str,  // him / her
    s: &'static str,  // his / her
    g: &'static str,  // boy / girl
    x: &'static str,  // the other gender
    om: &'static str, // the other's object pronoun
}

const RUBY: Who = Who {
    n: "ruby",
    o: "winy",
    p: "he",
    m: "him",
    s: "his",
    g: "boy",
    x: "girl",
    om: "her",
};
const WINY: Who = Who {
    n: "winy",
    o: "ruby",
    p: "she",
    m: "her",
    s: "her",
    g: "girl",
    x: "boy",
    om: "him",
};

/// Fills `{n} {o} {p} {m} {s} {g} {x} {om}`.
fn fill(t: &str, w: &Who) -> String {
    t.replace("{n}", w.n)
        .replace("{om}", w.om)
        .replace("{o}", w.o)
        .replace("{p}", w.p)
        .replace("{m}", w.m)
        .replace("{s}", w.s)
        .replace("{g}", w.g)
        .replace("{x}", w.x)
}

/// Statements: (name form, pronoun form). The pronoun form is written out when it is not the
/// name form with `{n}` replaced by `{p}`.
const RUBY_FACTS: &[(&str, &str)] = &[
    ("{n} is a boy succulent plant.", ""),
    ("{n} is red.", ""),
    ("{n} is very red in the cold.", ""),
    ("{n} turns red in the strong sun.", ""),
    ("{n} is more red in winter.", ""),
    ("{n} is a red boy succulent.", ""),
    ("{n} likes the strong sun.", ""),
    ("{n} likes the warm light.", ""),
    ("{n} knows the cold winters.", ""),
    ("{n} turns red when the sun is strong.", ""),
    ("{n} is red today because the sun is strong.", ""),
    ("the leaves of {n} are red.", "{s} leaves are red."),
    ("{n} is a small red plant.", ""),
    ("{n} is not a girl.", ""),
    ("{n} looks at the sun in the morning.", ""),
    ("{n} is happy in the warm sun.", ""),
    ("{n} waits for the sun every morning.", ""),
    ("{n} is strong in the cold.", ""),
];

const WINY_FACTS: &[(&str, &str)] = &[
    ("{n} is a girl succulent plant.", ""),
    ("sometimes {n} blooms white flowers.", ""),
    ("{n} is calm.", ""),
    ("{n} likes the window.", ""),
    ("{n} likes the soft morning air.", ""),
    ("{n} feels the soft morning air.", ""),
    ("{n} looks at the window.", ""),
    ("{n} is calm and looks at the window.", ""),
    ("{n} is a calm girl succulent.", ""),
    ("{n} blooms white flowers in spring.", ""),
    ("the flowers of {n} are white.", "{s} flowers are white."),
    ("the leaves of {n} are green.", "{s} leaves are green."),
    ("{n} is quiet and gentle in the morning.", ""),
    ("{n} waits for the soft morning light.", ""),
    ("{n} is not a boy.", ""),
    ("{n} is a small green plant.", ""),
    ("{n} is calm when the rain is on the window.", ""),
    ("{n} likes the quiet night.", ""),
];

const SHARED_FACTS: &[(&str, &str)] = &[
    ("{n} lives in the pot by the window.", ""),
    ("{n} sleeps with {o} in the pot.", ""),
    ("{n} grows slowly for many days.", ""),
    ("{n} drinks a little water.", ""),
    ("{n} lives with {o} in the same pot.", ""),
    ("{n} looks at the sun in the window.", ""),
    ("{n} sees the rain on the window.", ""),
    ("{n} needs a little water and light.", ""),
    ("{n} sleeps in the pot at night.", ""),
    ("{n} grows in the soft soil.", ""),
    ("{n} knows many seasons with {o}.", ""),
    ("{n} is happy with {o}.", ""),
    ("{n} waits for the warm spring.", ""),
    ("{n} stays in the pot all winter.", ""),
    ("{n} is a small succulent plant.", ""),
    ("{n} grows with {o} through the winters.", ""),
    ("{n} likes the light of the morning.", ""),
    ("{n} talks with {o} at night.", ""),
    ("{n} is the friend of {o}.", ""),
    ("{n} drinks the water in the soil.", ""),
    ("{n} knows three winters with {o}.", ""),
    ("{n} grows a little every day.", ""),
    ("{n} feels the warm light on the window.", ""),
    ("{n} does not drink much water.", ""),
    ("{n} sees the moon and the stars at night.", ""),
    ("{n} sleeps under the bright moon.", ""),
    ("{n} feels the cold wind on the window.", ""),
    ("{n} dreams of the warm spring.", ""),
    ("{n} grows slowly in summer.", ""),
];

const THEY_FACTS: &[&str] = &[
    "they live in the same pot by the window.",
    "they sleep together in the pot.",
    "they grow slowly through the seasons.",
    "they drink a little water every day.",
    "ruby and winy live together.",
    "they are good friends.",
    "they know three winters together.",
    "they like the morning sun.",
    "ruby and winy grow in the same pot.",
    "they sleep when the night is cold.",
    "they wait for the spring together.",
    "the two friends look at the rain.",
    "the sun is warm on the window today.",
    "the soil in the pot is dry.",
    "the night is quiet and cold.",
    "the morning air is soft.",
    "the sky is dark at night.",
    "snow is on the window in winter.",
    "they grow slowly in autumn.",
    "the pot is small and round.",
    "the moon is bright in the window.",
];

/// Greetings, used as they are in the normal pairs.
const GREETINGS: [(&str, &str); 8] = [
    ("hello, ruby!", "hello, winy!"),
    ("hello, winy!", "hello, ruby! the sun is warm today."),
    ("good morning, winy!", "good morning, ruby!"),
    (
        "good morning, ruby!",
        "good morning! the morning air is soft.",
    ),
    ("good night, ruby!", "good night, winy!"),
    ("good night, winy!", "good night! sleep well."),
    ("hello, sun!", "ruby turns red in the strong sun."),
    ("good night, moon!", "winy and ruby sleep in the pot."),
];

/// A fact probe: (id, fact, prompt, expected first word, contrast, words the answer must hold).
type FactProbe = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Our fact probes.
const FACT_PROBES: &[FactProbe] = &[
    (
        "gender-winy-boy-plant",
        "gender",
        "is winy a boy plant?",
        "no",
        "yes",
        &[],
    ),
    (
        "gender-ruby-girl-succulent",
        "gender",
        "is ruby a girl succulent?",
        "no",
        "yes",
        &[],
    ),
    (
        "gender-ruby-you-boy",
        "gender",
        "ruby, are you a boy?",
        "yes",
        "no",
        &[],
    ),
    (
        "gender-winy-you-boy",
        "gender",
        "winy, are you a boy?",
        "no",
        "yes",
        &[],
    ),
    (
        "gender-winy-really-girl",
        "gender",
        "is winy really a girl?",
        "yes",
        "no",
        &[],
    ),
    (
        "gender-ruby-really-girl",
        "gender",
        "is ruby really a girl?",
        "no",
        "yes",
        &[],
    ),
    (
        "pronoun-ruby-sleep",
        "pronoun",
        "where does ruby sleep?",
        "he",
        "she",
        &[],
    ),
    (
        "pronoun-winy-like",
        "pronoun",
        "what does winy like?",
        "she",
        "he",
        &[],
    ),
    (
        "pronoun-ruby-today",
        "pronoun",
        "how is ruby today?",
        "he",
        "she",
        &[],
    ),
    (
        "pronoun-ruby-night",
        "pronoun",
        "what does ruby do at night?",
        "he",
        "she",
        &[],
    ),
    (
        "pronoun-winy-live",
        "pronoun",
        "where does winy live?",
        "she",
        "he",
        &[],
    ),
    (
        "pronoun-ruby-color",
        "color",
        "what color is ruby?",
        "he",
        "she",
        &["red"],
    ),
    (
        "pronoun-winy-water",
        "pronoun",
        "how much water does winy drink?",
        "she",
        "he",
        &[],
    ),
    (
        "name-white-flowers",
        "name",
        "who blooms white flowers?",
        "winy",
        "ruby",
        &[],
    ),
    (
        "name-red-cold",
        "name",
        "who is red in the cold?",
        "ruby",
        "winy",
        &[],
    ),
    (
        "name-friend-of-ruby",
        "name",
        "who is the friend of ruby?",
        "winy",
        "ruby",
        &[],
    ),
    (
        "name-friend-of-winy",
        "name",
        "who is the friend of winy?",
        "ruby",
        "winy",
        &[],
    ),
    ("color-ruby-red", "color", "is ruby red?", "yes", "no", &[]),
    ("color-winy-red", "color", "is winy red?", "no", "yes", &[]),
    (
        "bloom-winy-white",
        "bloom",
        "does winy bloom white flowers?",
        "yes",
        "no",
        &[],
    ),
    (
        "place-ruby-pot",
        "place",
        "does ruby sleep in the pot?",
        "yes",
        "no",
        &[],
    ),
    (
        "place-same-pot",
        "place",
        "do ruby and winy live in the same pot?",
        "yes",
        "no",
        &[],
    ),
    (
        "trait-winy-calm",
        "trait",
        "is winy calm?",
        "yes",
        "no",
        &[],
    ),
    (
        "friend-ruby-winy",
        "friend",
        "is ruby the friend of winy?",
        "yes",
        "no",
        &[],
    ),
    (
        "like-winy-window",
        "like",
        "does winy like the window?",
        "yes",
        "no",
        &[],
    ),
];

/// A question with the answers it may get. Third-person questions may take a lead-in.
struct Qa {
    q: String,
    answers: Vec<String>,
    lead_in: bool,
}

fn qa(q: &str, answers: &[&str], w: &Who, lead_in: bool) -> Qa {
    Qa {
        q: fill(q, w),
        answers: answers.iter().map(|a| fill(a, w)).collect(),
        lead_in,
    }
}

/// Every question family of the QA file.
fn questions() -> Vec<Qa> {
    let mut out = Vec::new();
    let both = [&RUBY, &WINY];
    // Gender, yes/no, in many phrasings (never the seed's bare "is X a Y?").
    let third = [
        "is {n} a {G} plant?",
        "is {n} a {G} succulent?",
        "is {n} a {G} succulent plant?",
        "is {n} really a {G}?",
        "is {n} a little {G} plant?",
    ];
    let second = ["{n}, are you a {G}?", "are you a {G}, {n}?"];
    for w in both {
        for asked in [w.g, w.x] {
            let yes = asked == w.g;
            let a3: &[&str] = if yes {
                &[
                    "yes, {n} is a {g}.",
                    "yes, {p} is a {g} succulent plant.",
                    "yes, {p} is a {g}.",
                    "yes, {n} is a {g} succulent plant.",
                ]
            } else {
                &[
                    "no, {n} is a {g}.",
                    "no, {p} is a {g} succulent plant.",
                    "no, {p} is a {g}, not a {x}.",
                    "no, {n} is a {g} succulent plant.",
                ]
            };
            let a2: &[&str] = if yes {
                &["yes, i am a {g}.", "yes, i am a {g} succulent plant."]
            } else {
                &[
                    "no, i am a {g}.",
                    "no, i am a {g} succulent plant.",
                    "no, i am a {g}, not a {x}.",
                ]
            };
            for t in third {
                out.push(qa(&t.replace("{G}", asked), a3, w, true));
            }
            for t in second {
                out.push(qa(&t.replace("{G}", asked), a2, w, false));
            }
        }
        for t in ["is {n} a boy or a girl?", "is {n} a girl or a boy?"] {
            out.push(qa(
                t,
                &[
                    "{p} is a {g}.",
                    "{p} is a {g} succulent plant.",
                    "{n} is a {g}.",
                ],
                w,
                true,
            ));
        }
        // Places and sleep.
        out.push(qa(
            "where does {n} sleep?",
            &[
                "{p} sleeps in the pot by the window.",
                "{p} sleeps with {o} in the pot.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "where does {n} sleep at night?",
            &[
                "{p} sleeps with {o} in the pot.",
                "{p} sleeps in the same pot as {o}.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "where does {n} live?",
            &[
                "{p} lives in the pot by the window.",
                "{p} lives with {o} in the same pot.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "where do you sleep, {n}?",
            &[
                "i sleep with {o} in the pot.",
                "i sleep in the pot by the window.",
            ],
            w,
            false,
        ));
        out.push(qa(
            "where do you live, {n}?",
            &[
                "i live in the pot by the window.",
                "i live with {o} in the same pot.",
            ],
            w,
            false,
        ));
        out.push(qa(
            "does {n} sleep in the pot?",
            &[
                "yes, {p} sleeps with {o} in the pot.",
                "yes, {p} sleeps in the pot by the window.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "does {n} sleep in the pot at night?",
            &["yes, {p} sleeps with {o} in the pot at night."],
            w,
            true,
        ));
        // Water and growing.
        out.push(qa(
            "how much water does {n} drink?",
            &[
                "{p} drinks a little water.",
                "{p} drinks a little water every day.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "do you drink much water, {n}?",
            &["no, i drink a little water.", "no, i need a little water."],
            w,
            false,
        ));
        out.push(qa(
            "how does {n} grow?",
            &[
                "{p} grows slowly for many days.",
                "{p} grows slowly in the soft soil.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "how many days does {n} grow in this pot?",
            &["{p} grows for many days with {o}."],
            w,
            true,
        ));
        out.push(qa(
            "how many winters does {n} know?",
            &[
                "{p} knows three winters.",
                "{p} knows three winters with {o}.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "does {n} know the cold?",
            &["yes, {p} knows the cold of winter."],
            w,
            true,
        ));
        // Friends.
        out.push(qa(
            "who is your friend, {n}?",
            &["{o} is my friend.", "my friend is {o}."],
            w,
            false,
        ));
        out.push(qa(
            "who lives with {n}?",
            &[
                "{o} lives with {m} in the pot.",
                "{o} lives with {n} in the same pot.",
            ],
            w,
            true,
        ));
        out.push(qa(
            "who sleeps with {n} at night?",
            &["{o} sleeps with {m} in the pot."],
            w,
            true,
        ));
        out.push(qa(
            "{n}, is {o} your friend?",
            &["yes, {o} is my friend.", "yes, {o} is my good friend."],
            w,
            false,
        ));
        out.push(qa(
            "is {o} the friend of {n}?",
            &["yes, {o} is {s} friend.", "yes, they are good friends."],
            w,
            false,
        ));
        out.push(qa(
            "how are you today, {n}?",
            if w.n == "ruby" {
                &["i am red and happy today.", "i am happy in the warm sun."]
            } else {
                &[
                    "i am calm and happy today.",
                    "i am calm, and i look at the window.",
                ]
            },
            w,
            false,
        ));
        out.push(qa(
            "do you like the rain, {n}?",
            &[
                "yes, i like the rain on the window.",
                "yes, i see the rain on the window.",
            ],
            w,
            false,
        ));
        out.push(qa(
            "what does {n} drink?",
            &[
                "{p} drinks a little water.",
                "{p} drinks the water in the soil.",
            ],
            w,
            true,
        ));
    }
    // Character-specific questions.
    let r = &RUBY;
    let wn = &WINY;
    let specific: Vec<(&Who, &str, &[&str], bool)> = vec![
        (
            r,
            "what color is {n}?",
            &["{p} is red.", "{p} is red, and more red in the cold."],
            true,
        ),
        (
            wn,
            "what color is {n}?",
            &["{p} is green, and sometimes {p} blooms white flowers."],
            true,
        ),
        (
            r,
            "what color is {n} in the cold?",
            &["{p} is very red in the cold."],
            true,
        ),
        (
            r,
            "what color is {n} in winter?",
            &["{p} is more red in winter."],
            true,
        ),
        (
            wn,
            "what color are the flowers of {n}?",
            &["they are white.", "{s} flowers are white."],
            true,
        ),
        (
            wn,
            "what color are your flowers, {n}?",
            &["my flowers are white.", "they are white."],
            false,
        ),
        (
            r,
            "is {n} red in the cold?",
            &["yes, {p} is very red in the cold."],
            true,
        ),
        (
            r,
            "is {n} red in winter?",
            &["yes, {p} is more red in winter."],
            true,
        ),
        (
            r,
            "{n}, are you red?",
            &["yes, i am red.", "yes, i am red in the sun."],
            false,
        ),
        (
            r,
            "is {n} a red plant?",
            &["yes, {n} is a red succulent plant."],
            true,
        ),
        (
            wn,
            "is {n} red in the cold?",
            &["no, ruby is red in the cold.", "no, {p} is green."],
            true,
        ),
        (
            wn,
            "{n}, are you red?",
            &["no, i am green, and ruby is red.", "no, ruby is red."],
            false,
        ),
        (
            wn,
            "is {n} a red plant?",
            &["no, ruby is the red plant.", "no, {p} is green."],
            true,
        ),
        (
            r,
            "why is {n} red in winter?",
            &["because it is cold.", "because {p} is red in the cold."],
            true,
        ),
        (
            r,
            "why is {n} red in the sun?",
            &["because the sun is strong."],
            true,
        ),
        (
            r,
            "why do you like the sun, {n}?",
            &["because i turn red in the sun.", "because the sun is warm."],
            false,
        ),
        (
            wn,
            "why is {n} calm?",
            &[
                "because {p} likes the soft morning air.",
                "because {p} sleeps with ruby.",
            ],
            true,
        ),
        (
            wn,
            "why does {n} like the window?",
            &[
                "because {p} sees the soft morning light.",
                "because the morning air is soft.",
            ],
            true,
        ),
        (
            wn,
            "is {n} calm in the morning?",
            &["yes, {p} is calm in the morning.", "yes, {p} is very calm."],
            true,
        ),
        (
            wn,
            "are you calm, {n}?",
            &["yes, i am calm.", "yes, i am calm and happy."],
            false,
        ),
        (
            wn,
            "does {n} bloom in spring?",
            &["yes, {p} blooms white flowers in spring."],
            true,
        ),
        (
            wn,
            "does {n} sometimes bloom?",
            &["yes, sometimes {p} blooms white flowers."],
            true,
        ),
        (
            wn,
            "does {n} bloom red flowers?",
            &["no, {s} flowers are white."],
            true,
        ),
        (
            r,
            "does {n} bloom white flowers?",
            &[
                "no, winy blooms white flowers.",
                "no, but winy sometimes blooms white flowers.",
            ],
            true,
        ),
        (
            r,
            "can you bloom, {n}?",
            &[
                "no, but winy sometimes blooms white flowers.",
                "no, but i am red.",
            ],
            false,
        ),
        (
            wn,
            "{n}, can you bloom?",
            &["yes, sometimes i bloom white flowers."],
            false,
        ),
        (
            wn,
            "does {n} like the soft morning air?",
            &["yes, {p} likes the soft morning air."],
            true,
        ),
        (
            wn,
            "does {n} like the window in the morning?",
            &["yes, {p} likes the window in the morning."],
            true,
        ),
        (
            r,
            "does {n} like the strong sun?",
            &["yes, {p} likes the strong sun."],
            true,
        ),
        (
            r,
            "what does {n} like?",
            &["{p} likes the strong sun.", "{p} likes the warm light."],
            true,
        ),
        (
            wn,
            "what does {n} like?",
            &[
                "{p} likes the window and the soft morning air.",
                "{p} likes the window.",
            ],
            true,
        ),
        (
            r,
            "what do you like, {n}?",
            &["i like the strong sun.", "i like the warm light."],
            false,
        ),
        (
            wn,
            "what do you like, {n}?",
            &["i like the window.", "i like the soft morning air."],
            false,
        ),
        (
            r,
            "what do you see, {n}?",
            &["i see the strong sun.", "i see the rain on the window."],
            false,
        ),
        (
            wn,
            "what do you see, {n}?",
            &["i see the soft morning light.", "i see the window."],
            false,
        ),
        (
            r,
            "how is {n} today?",
            &["{p} is red and happy.", "{p} is happy in the sun."],
            true,
        ),
        (
            wn,
            "how is {n} today?",
            &["{p} is calm and happy.", "{p} is calm today."],
            true,
        ),
        (
            r,
            "who is {n}?",
            &[
                "{n} is a boy succulent plant.",
                "{p} is the red friend of winy.",
                "{n} is the friend of winy.",
            ],
            true,
        ),
        (
            wn,
            "does {n} know three winters?",
            &["yes, {p} knows three winters with ruby."],
            true,
        ),
        (
            r,
            "does {n} drink much water?",
            &["no, {p} drinks a little water."],
            true,
        ),
        (
            r,
            "do ruby and winy sleep in the same pot?",
            &["yes, they sleep together in the pot."],
            true,
        ),
        (
            r,
            "do ruby and winy live by the window?",
            &["yes, they live in the same pot by the window."],
            true,
        ),
        (
            r,
            "where do ruby and winy live?",
            &[
                "they live in the same pot by the window.",
                "they live together in a pot.",
            ],
            true,
        ),
        (
            r,
            "where do ruby and winy sleep?",
            &[
                "they sleep together in the pot.",
                "they sleep in the same pot.",
            ],
            true,
        ),
        (
            r,
            "why do ruby and winy live together?",
            &["because they are good friends."],
            true,
        ),
        (
            r,
            "how many winters do ruby and winy know?",
            &["they know three winters together."],
            true,
        ),
        (
            r,
            "who blooms white flowers in spring?",
            &["winy blooms white flowers in spring."],
            true,
        ),
        (
            r,
            "who sometimes blooms?",
            &[
                "winy sometimes blooms white flowers.",
                "winy does, and her flowers are white.",
            ],
            true,
        ),
        (
            r,
            "who is red in winter?",
            &["ruby is red in winter.", "ruby is more red in winter."],
            true,
        ),
        (
            r,
            "who turns red in the sun?",
            &["ruby turns red in the strong sun."],
            true,
        ),
        (
            r,
            "who is calm?",
            &["winy is calm.", "winy is calm and gentle."],
            true,
        ),
        (
            r,
            "who likes the window?",
            &["winy likes the window."],
            true,
        ),
        (
            r,
            "who likes the strong sun?",
            &["ruby likes the strong sun."],
            true,
        ),
        (
            r,
            "what is the color of the flowers?",
            &["the flowers of winy are white."],
            true,
        ),
        (
            r,
            "what does {n} see at night?",
            &["{p} sees the moon and the stars."],
            true,
        ),
        (
            wn,
            "what does {n} see at night?",
            &[
                "{p} sees the moon and the stars.",
                "{p} sees the bright moon.",
            ],
            true,
        ),
        (
            r,
            "is it cold in winter?",
            &["yes, snow is on the window.", "yes, the wind is cold."],
            false,
        ),
        (
            r,
            "what is in the sky at night?",
            &["the moon and the stars are in the sky."],
            false,
        ),
        (
            r,
            "what do you dream of, {n}?",
            &["i dream of the warm spring.", "i dream of the strong sun."],
            false,
        ),
        (
            wn,
            "what do you dream of, {n}?",
            &["i dream of the warm spring.", "i dream of white flowers."],
            false,
        ),
        (
            wn,
            "good morning, {n}! how are you?",
            &["good morning! i am calm and happy."],
            false,
        ),
        (
            r,
            "good morning, {n}! how are you?",
            &["good morning! i am red and happy."],
            false,
        ),
    ];
    for (w, q, answers, lead) in specific {
        out.push(qa(q, answers, w, lead));
    }
    // What does X do at a time?
    let times: [(&str, [&str; 2], [&str; 2]); 7] = [
        (
            "in the morning",
            ["he looks at the sun.", "he waits for the warm light."],
            [
                "she feels the soft morning air.",
                "she looks at the window.",
            ],
        ),
        (
            "at night",
            ["he sleeps with winy in the pot.", "he talks with winy."],
            ["she sleeps with ruby in the pot.", "she talks with ruby."],
        ),
        (
            "in winter",
            [
                "he is very red in the cold.",
                "he stays in the pot with winy.",
            ],
            [
                "she is calm and waits for the spring.",
                "she stays in the pot with ruby.",
            ],
        ),
        (
            "in spring",
            [
                "he grows slowly in the warm light.",
                "he looks at the new sun.",
            ],
            [
                "sometimes she blooms white flowers.",
                "she blooms white flowers.",
            ],
        ),
        (
            "in the sun",
            ["he turns red in the strong sun.", "he is red and happy."],
            ["she is calm in the warm light.", "she looks at the light."],
        ),
        (
            "after the rain",
            ["he drinks a little water.", "he looks at the wet window."],
            ["she drinks a little water.", "she feels the soft air."],
        ),
        (
            "every day",
            ["he grows slowly with winy.", "he waits for the sun."],
            ["she looks at the window with ruby.", "she grows a little."],
        ),
    ];
    for (t, ra, wa) in times {
        out.push(qa(&format!("what does {{n}} do {t}?"), &ra, &RUBY, true));
        out.push(qa(&format!("what does {{n}} do {t}?"), &wa, &WINY, true));
    }
    out
}

/// Whether `needle` occurs as a contiguous run of `hay`.
fn contains_run(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn pair_tokens(s1: &str, s2: &str) -> Vec<String> {
    tokenize(&format!("{s1} {s2}"))
}

fn statements(w: &Who, own: &[(&str, &str)]) -> Vec<(String, String)> {
    own.iter()
        .chain(SHARED_FACTS)
        .map(|(name, pron)| {
            let pron = if pron.is_empty() {
                name.replacen("{n}", "{p}", 1)
            } else {
                pron.to_string()
            };
            (fill(name, w), fill(&pron, w))
        })
        .collect()
}

fn normal_pairs(rng: &mut StdRng, forbidden: &[Vec<String>]) -> Vec<(String, String)> {
    let ruby = statements(&RUBY, RUBY_FACTS);
    let winy = statements(&WINY, WINY_FACTS);
    let they: Vec<String> = THEY_FACTS.iter().map(|s| s.to_string()).collect();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for (a, b) in &seed_in() {
        if !a.ends_with('?') {
            seen.insert((a.to_string(), b.to_string()));
            out.push((a.to_string(), b.to_string()));
        }
    }
    for (a, b) in &GREETINGS {
        seen.insert((a.to_string(), b.to_string()));
        out.push((a.to_string(), b.to_string()));
    }
    let mut attempts = 0;
    while out.len() < NORMAL_PAIRS {
        attempts += 1;
        assert!(
            attempts < 1_000_000,
            "cannot draw enough distinct normal pairs"
        );
        let (me, other) = if rng.gen_bool(0.5) {
            (&ruby, &winy)
        } else {
            (&winy, &ruby)
        };
        let i = rng.gen_range(0..me.len());
        let kind: f64 = rng.gen();
        let (s1, s2) = if kind < 0.5 {
            let j = rng.gen_range(0..me.len());
            if i == j {
                continue;
            }
            (me[i].0.clone(), me[j].1.clone())
        } else if kind < 0.75 {
            (
                me[i].0.clone(),
                other[rng.gen_range(0..other.len())].0.clone(),
            )
        } else if kind < 0.87 {
            (me[i].0.clone(), they.choose(rng).unwrap().clone())
        } else {
            (they.choose(rng).unwrap().clone(), me[i].0.clone())
        };
        let toks = pair_tokens(&s1, &s2);
        if toks.len() > MAX_TOKENS || forbidden.iter().any(|f| contains_run(&toks, f)) {
            continue;
        }
        // The seed's in-training prompts keep exactly one continuation, the seed's answer, so
        // that "answers the seed's prompt as expected" is a well-defined test of learning.
        if seed_in().iter().any(|(a, _)| *a == s1) {
            continue;
        }
        if seen.insert((s1.clone(), s2.clone())) {
            out.push((s1, s2));
        }
    }
    out.shuffle(rng);
    out
}

fn qa_pairs(rng: &mut StdRng, forbidden: &[Vec<String>]) -> Vec<(String, String)> {
    let lead_ins = ["tell me, ", "so, "];
    // Every candidate (question, answer), grouped by question.
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    let mut dropped = 0;
    for item in questions() {
        let mut qs = vec![item.q.clone()];
        if item.lead_in {
            qs.extend(lead_ins.iter().map(|l| format!("{l}{}", item.q)));
        }
        for q in qs {
            let group: Vec<(String, String)> = item
                .answers
                .iter()
                .map(|a| (q.clone(), a.clone()))
                .filter(|(q, a)| {
                    let t = pair_tokens(q, a);
                    assert!(t.len() <= MAX_TOKENS, "too long: {q} {a}");
                    !forbidden.iter().any(|f| contains_run(&t, f))
                })
                .collect();
            if group.is_empty() {
                dropped += 1;
            } else {
                groups.push(group);
            }
        }
    }
    eprintln!("make_corpus: {dropped} question forms held out (they contain a probe)");
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for (a, b) in &seed_in() {
        if a.ends_with('?') {
            seen.insert((a.to_string(), b.to_string()));
            out.push((a.to_string(), b.to_string()));
        }
    }
    // One answer for every question form first, then the rest at random.
    let mut rest = Vec::new();
    for g in &mut groups {
        g.shuffle(rng);
        let first = g[0].clone();
        if seen.insert(first.clone()) {
            out.push(first);
        }
        rest.extend(g[1..].iter().cloned());
    }
    rest.shuffle(rng);
    for p in rest {
        if out.len() >= QA_PAIRS {
            break;
        }
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    assert!(out.len() >= 400, "only {} QA pairs", out.len());
    out.shuffle(rng);
    out
}

fn probes() -> Vec<Probe> {
    let mut out = Vec::new();
    for (i, (q, a)) in seed_in().iter().enumerate() {
        out.push(Probe {
            id: format!("seed-in-{}", i + 1),
            group: ProbeGroup::SeedInTraining,
            prompt: q.to_string(),
            expected_answer: Some(a.to_string()),
            fact: None,
            expect_first_word: None,
            contrast_first_word: None,
            expect_words: vec![],
        });
    }
    for (i, q) in seed_out().iter().enumerate() {
        // The four gender probes are checkable: "is ruby a boy?" -> "yes".
        let gender = q.strip_prefix("is ").map(|rest| {
            let ruby = rest.starts_with("ruby");
            let boy = rest.contains("boy");
            if ruby == boy {
                ("yes", "no")
            } else {
                ("no", "yes")
            }
        });
        out.push(Probe {
            id: format!("seed-out-{}", i + 1),
            group: ProbeGroup::SeedOutOfTraining,
            prompt: q.to_string(),
            expected_answer: None,
            fact: gender.map(|_| "gender".to_string()),
            expect_first_word: gender.map(|g| g.0.to_string()),
            contrast_first_word: gender.map(|g| g.1.to_string()),
            expect_words: vec![],
        });
    }
    for (id, fact, prompt, first, contrast, words) in FACT_PROBES {
        out.push(Probe {
            id: id.to_string(),
            group: ProbeGroup::Fact,
            prompt: prompt.to_string(),
            expected_answer: None,
            fact: Some(fact.to_string()),
            expect_first_word: Some(first.to_string()),
            contrast_first_word: Some(contrast.to_string()),
            expect_words: words.iter().map(|w| w.to_string()).collect(),
        });
    }
    out
}

/// The background text for the embeddings: every statement in both forms, every question and
/// answer, and the same sentences with a hidden word in place of a name or of "succulent".
fn background(normal: &[(String, String)], qa: &[(String, String)]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (w, own) in [(&RUBY, RUBY_FACTS), (&WINY, WINY_FACTS)] {
        for (a, b) in statements(w, own) {
            lines.push(a);
            lines.push(b);
        }
    }
    lines.extend(THEY_FACTS.iter().map(|s| s.to_string()));
    for (a, b) in normal.iter().chain(qa) {
        lines.push(format!("{a} {b}"));
    }
    let mut hidden = Vec::new();
    for l in &lines {
        let toks = tokenize(l);
        for name in ["ruby", "winy"] {
            if toks.iter().any(|t| t == name) {
                hidden.push(
                    toks.iter()
                        .map(|t| if t == name { HIDDEN[0] } else { t.as_str() })
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }
        if toks.iter().any(|t| t == "succulent") {
            hidden.push(l.replace("succulent", HIDDEN[1]));
        }
    }
    lines.extend(hidden);
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

fn write_pairs(path: &Path, pairs: &[(String, String)]) -> succulm::Result<()> {
    let mut s = String::from("[\n");
    for (i, (a, b)) in pairs.iter().enumerate() {
        let sep = if i + 1 == pairs.len() { "" } else { "," };
        let _ = writeln!(
            s,
            "  [{}, {}]{sep}",
            serde_json::to_string(a).unwrap(),
            serde_json::to_string(b).unwrap()
        );
    }
    s.push_str("]\n");
    write_atomic(path, s.as_bytes())
}

const HELP: &str = "\
make_corpus: regenerate the fixture corpus, probes, hidden words and background text.

Options:
  --seed N    seed of every random choice, 0..=2^64-1 (default 2024)
  --out DIR   output directory (default: the shipped fixtures/); checked first, created when
              the files are written
  --help      this text";

fn parse(flags: &mut Flags) -> succulm::Result<(u64, PathBuf)> {
    let mut seed = 2024u64;
    let mut out_dir = PathBuf::from(cli::SHIPPED_FIXTURES);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--seed" => seed = cli::int("--seed", &flags.value("--seed")?, 0..=u64::MAX)?,
            "--out" => out_dir = flags.value("--out")?.into(),
            other => return Err(cli::unknown(other)),
        }
    }
    cli::check_output_dir("--out", &out_dir)?;
    Ok((seed, out_dir))
}

fn main() -> ExitCode {
    cli::main(HELP, parse, |(seed, out_dir)| generate(seed, &out_dir))
}

/// Generates every file into `out_dir` from `seed`.
fn generate(seed: u64, out_dir: &Path) -> succulm::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);

    let probes = probes();
    let forbidden: Vec<Vec<String>> = probes
        .iter()
        .filter(|p| p.group != ProbeGroup::SeedInTraining)
        .map(|p| tokenize(&p.prompt))
        .collect();
    let normal = normal_pairs(&mut rng, &forbidden);
    let qa = qa_pairs(&mut rng, &forbidden);

    let mut vocab: BTreeSet<String> = BTreeSet::new();
    for (a, b) in normal.iter().chain(&qa) {
        vocab.extend(pair_tokens(a, b));
    }
    for p in &probes {
        for t in tokenize(&p.prompt) {
            assert!(
                vocab.contains(&t),
                "probe word {t:?} ({}) is not in the corpus",
                p.id
            );
        }
    }
    for h in HIDDEN {
        assert!(!vocab.contains(h), "hidden word {h} is used");
    }
    let total = vocab.len() + HIDDEN.len() + 4;
    eprintln!(
        "make_corpus: {} normal pairs, {} QA pairs, {} probes, {total} words with specials and hidden",
        normal.len(),
        qa.len(),
        probes.len()
    );
    if !(150..=160).contains(&total) {
        return Err(succulm::Error::invalid_arg(
            "--seed",
            format!("seed {seed} gives a vocabulary of {total} words; the fixtures want 150..=160"),
        ));
    }

    std::fs::create_dir_all(out_dir).map_err(|source| succulm::Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    write_pairs(&out_dir.join("succulm_normal_sentence_pairs.json"), &normal)?;
    write_pairs(&out_dir.join("succulm_question_answer_pairs.json"), &qa)?;
    let probes_json = serde_json::to_string_pretty(&probes).unwrap() + "\n";
    write_atomic(out_dir.join("succulm_probes.json"), probes_json.as_bytes())?;
    let hidden_json = serde_json::to_string(&HIDDEN).unwrap() + "\n";
    write_atomic(
        out_dir.join("succulm_hidden_words.json"),
        hidden_json.as_bytes(),
    )?;
    write_atomic(
        out_dir.join("background.txt"),
        background(&normal, &qa).as_bytes(),
    )
}
