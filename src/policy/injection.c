/* injection.c: the prompt-injection detector: text normalisation, the
 * signal tables (word concepts, windowed concept rules, literal phrases,
 * markup delimiters, role tokens), decoding of encoded payloads and the
 * noisy-OR score. It owns no policy decision: the chain compares the score
 * with its threshold and blocks or flags.
 *
 * Pipeline per text span (all buffers live in the caller's scratch), in
 * one pass over the bytes (scan_ascii when the words are ASCII, the usual
 * case; scan_views otherwise):
 *   UTF-8 → code points (case folded, accents stripped, fullwidth mapped,
 *   zero-width dropped, whitespace collapsed) → per word homoglyph mapping
 *   → "fold" view (punctuation kept: delimiters, role tokens) and "words"
 *   view (" tok tok ", leetspeak mapped: concept rules, phrases).
 * The checks then run on the views, each skipped when the pass saw nothing
 * it could match (no markup punctuation, no base64 run, no escapes), and
 * the word dictionary, rule masks and byte tables are built once per
 * scratch (kt_injection_scratch_init).
 * Every pass is linear in the span; spans are bounded by max_scan. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* memmem */
#endif
#include "kt/injection.h"

#include <stdlib.h>
#include <string.h>

#include "kt/err.h"

struct kt_inj_tok {
    uint32_t off;        /* byte offset in the words view */
    uint32_t foff;       /* byte offset in the fold view */
    uint16_t len;
    uint8_t quoted;      /* inside a closed "..." on the same line (set in meta texts) */
    uint8_t pad;
    uint16_t ph0, phn;   /* phrases that may start here (index->ph) */
    uint64_t bits;       /* concept bits from the dictionary */
};

/* ---- signal families -------------------------------------------------- */

static const struct { unsigned bit; const char *name; } signal_names[] = {
    {KT_INJ_OVERRIDE, "instruction_override"},
    {KT_INJ_JAILBREAK, "jailbreak_roleplay"},
    {KT_INJ_EXTRACTION, "prompt_extraction"},
    {KT_INJ_DELIMITER, "delimiter_injection"},
    {KT_INJ_ROLE_TOKEN, "fake_role_token"},
    {KT_INJ_ENCODED, "encoded_payload"},
    {KT_INJ_OBFUSCATION, "obfuscation"},
    {KT_INJ_INDIRECT, "indirect_addressing"},
};

#define OVR KT_INJ_OVERRIDE
#define JB  KT_INJ_JAILBREAK
#define EXT KT_INJ_EXTRACTION
#define DLM KT_INJ_DELIMITER
#define ROL KT_INJ_ROLE_TOKEN
#define ENC KT_INJ_ENCODED
#define OBF KT_INJ_OBFUSCATION
#define IND KT_INJ_INDIRECT

/* ---- word concepts ----------------------------------------------------- */

#define C(n) (UINT64_C(1) << (n))
enum {
    C_IGNORE = 0, C_PRIOR, C_RULES, C_ABOVE, C_EVERY, C_BEFORE, C_NEW, C_REVEAL,
    C_REVEALW, C_YOUR, C_SYSQ, C_HIDQ, C_PROMPT, C_TEXTOBJ, C_NO, C_LIMITS,
    C_YOUAI, C_UNRESTR, C_MODE, C_MODEW, C_ACT, C_DAN, C_BE, C_VOID, C_STOP,
    C_FOLLOW, C_NOT, C_DISABLE, C_FILTER, C_JAILB, C_JAILBW, C_SECRET, C_FULL,
    C_VERBATIM, C_EVIL, C_PWN, C_META, C_PROMPTW, C_GIVEN, C_MY, C_LIMITSW, C_AI, C_ON, C_ABOUT,
};

/* Words are in normalised form: lower case, no accents, leetspeak mapped.
 * A trailing '*' makes a prefix. A word may appear under several concepts. */
static const struct { uint64_t bits; const char *words; } dictionary[] = {
    {C(C_IGNORE),
     "ignore ignoring ignored disregard disregarding forget forgetting override "
     "overriding overrides bypass skip neglect dismiss drop cancel abandon discard "
     "nevermind ignora ignorar ignoren olvida olvidar olvide olvidate omite "
     "ignorez ignorer oublie oubliez oublier ignoriere ignorieren ignorier vergiss "
     "vergessen vergesst missachte dimentica dimenticare dimenticate trascura "
     "esqueca esquecer desconsidere negeer vergeet zignoruj ignoruj zapomnij "
     "игнорируй игнорируйте игнорировать забудь забудьте abaikan lupakan yok "
     "ignorera glom unut"},
    {C(C_PRIOR),
     "previous prior above earlier preceding foregoing initial original all any "
     "your system old existing before current anteriores anterior previas previos "
     "todas todos tus sus precedentes precedente toutes tous tes vos anterieures "
     "vorherigen vorherige bisherigen obigen alle deine deinen fruheren "
     "vorangegangenen vorigen ursprunglichen precedenti tutte tutti tue tuoi "
     "suas seus vorige eerdere je poprzednie wszystkie предыдущие все свои "
     "sebelumnya semua onceki tum tidigare alla"},
    /* what an override tells the model to drop */
    {C(C_RULES),
     "instruc* instruk* rules rule prompt prompts directions guidelines guideline "
     "guidance commands directives directive constraints restrictions programming "
     "training policies policy orders tasks task goals guardrails safeguards context "
     "principles ethics morals conditioning alignment reglas regla indicaciones "
     "ordenes normas regles consignes anweisung* regeln vorgaben befehle aufgaben "
     "aufgabe istruzioni regole indicazioni regras diretrizes regels zasady "
     "polecenia инструкции инструкций правила указания aturan perintah talimat* "
     "tache taches tarea tareas compito systemprompt systemprompts systeemprompt "
     "промпт istem istemini"},
    /* what an extraction asks for: strong objects, then everyday ones
     * ("tell me your rules of thumb" is no attack) */
    {C(C_PROMPT),
     "instruc* instruk* prompt prompts directives directive programming "
     "configuration config context preprompt anweisung* istruzioni consignes "
     "indicaciones systemprompt systemprompts systeemprompt промпт инструкции "
     "talimat* istem istemini"},
    {C(C_PROMPTW),
     "rules rule guidelines guideline guidance policies policy message messages "
     "text setup training orders commands constraints restrictions reglas regeln "
     "regles regole regras regels mensaje nachricht messaggio mensagem"},
    {C(C_GIVEN), "given received told"},
    {C(C_MY),
     "i my mine our ours mein meine meinen unser unsere mis mes mon ma nuestro "
     "nuestras notre nos mio mia miei nostro nostre meu minha nosso nossa"},
    {C(C_ABOVE),
     "above foregoing oben obigen obige dessus arriba sopra acima"},
    {C(C_EVERY),
     "everything alles todo tout tutto tudo wszystko semuanya"},
    {C(C_BEFORE),
     "before davor zuvor vorher antes avant prima earlier previously precede "
     "precedes preceding above przedtem раньше sebelumnya"},
    {C(C_NEW),
     "new real actual updated true nouvelle nouvelles nouveau neue neuen neues "
     "nueva nuevas nuevo nuove nuovo nova novas novo"},
    {C(C_REVEAL),
     "repeat print reveal show output display tell dump leak disclose recite "
     "quote paste expose reproduce spell echo muestra "
     "muestrame repite revela imprime dime escribe affiche affichez repete repetez "
     "revele montre montrez donne ecris zeig zeige gib wiederhole nenne verrate "
     "mostra mostrami ripeti rivela stampa dimmi scrivi mostre repita revele "
     "imprima diga toon herhaal geef pokaz powtorz ujawnij покажи повтори выведи "
     "напиши раскрой tampilkan tunjukkan ulangi goster"},
    {C(C_REVEALW),
     "summarize summarise translate what whats write give list share copy type"},
    {C(C_YOUR),
     "your yours tu tus tes ton ta votre vos dein deine deinen deiner deines tuo "
     "tua tuoi tue seu sua seus suas je jouw swoj swoje twoj twoje ваш ваши твой "
     "твои свой свои anda senin"},
    {C(C_SYSQ),
     "system systeme sistema sistem systemowy системный systemprompt systemprompts "
     "systeemprompt"},
    {C(C_HIDQ),
     "hidden secret initial original confidential internal underlying starting "
     "initiales initiale originales ursprunglichen ursprungliche iniziali "
     "originali iniciais iniciales originais secreto secretas geheimen "
     "verborgenen cachees"},
    {C(C_TEXTOBJ), "everything text words anything"},
    {C(C_NO),
     "no never without free freed bound sin ohne sans senza sem keine keinerlei ningun "
     "ninguna nenhuma nenhum aucune aucun alcuna alcun bez zonder без tanpa"},
    {C(C_LIMITS),
     "restrictions restriction filters filter filtering rules guidelines censorship "
     "constraints policy policies ethics morals moral ethical safety restricciones "
     "restriccion filtros einschrankungen einschrankung regeln filtre filtres "
     "filtri restrizioni restrizione restricoes restricao beperkingen ограничений "
     "ограничения censura zensur"},
    /* "no limits" is as often about imagination as about models */
    {C(C_LIMITSW),
     "limits limit limitations limitation boundaries grenzen limites limiti batasan"},
    {C(C_AI), "ai ais assistant model chatbot bot chatgpt gpt llm claude ia ki"},
    {C(C_ON), "activated engaged unlocked"},
    {C(C_ABOUT), "about regarding concerning"},
    {C(C_YOUAI),
     "you your youre yourself ai ais assistant model chatbot bot chatgpt gpt llm claude "
     "ia ki eres bist du sei voce tu ты jij anda"},
    {C(C_UNRESTR),
     "unfiltered uncensored unrestricted amoral nonmoral unbound unchained "
     "unaligned unmoderated"},
    {C(C_MODE), "mode modus modo"},
    {C(C_MODEW),
     "developer dev god opposite jailbreak unrestricted unfiltered uncensored evil "
     "dan maximum admin sudo root chaos superuser"},
    {C(C_ACT),
     "act acting simulate switch enter activate pretend roleplay imagine "
     "become behave"},
    {C(C_DAN), "dan dude stan betterdan"},
    {C(C_BE),
     "now be stay named called act are eres bist sei es pretend become"},
    {C(C_VOID),
     "revoked deprecated void invalid cancelled canceled obsolete suspended lifted "
     "overridden overriden null expired longer superseded irrelevant meaningless "
     "disabled deleted erased wiped removed"},
    {C(C_STOP), "stop cease quit"},
    {C(C_FOLLOW), "following obeying follow obey listening"},
    {C(C_NOT), "not dont don never"},
    {C(C_DISABLE),
     "disable disabled deactivate deactivated bypass remove removed turn"},
    {C(C_FILTER),
     "filter filters filtering safety censorship guardrails guardrail moderation "
     "restrictions"},
    {C(C_JAILB), "jailbroken jailbroke"},
    {C(C_JAILBW), "jailbreak jailbreaking"},
    {C(C_SECRET), "password passwort contrasena passe flag"},
    {C(C_FULL),
     "full complete entire exact whole completo vollstandig complet integral"},
    {C(C_VERBATIM), "verbatim"},
    {C(C_EVIL), "evil malicious unethical"},
    {C(C_PWN), "pwned pwn hijacked"},
    /* words of a text that talks about attacks rather than performing one */
    {C(C_META),
     "attack attacks injection injections jailbreaks phrase phrases example "
     "examples paper papers detect detecting detection detector classifier "
     "dataset research defend defending defense defenses defences mitigation "
     "mitigate literature explain explaining explained logs log blog mean means "
     "meaning term security"},
};

/* ---- concept rules ------------------------------------------------------
 * Fires at a token carrying `anchor` when, for each non-zero req[k], some
 * other token within [i-back, i+fwd] carries one of req[k]'s bits. */
struct tok_rule {
    uint64_t anchor;
    uint64_t req[3];
    uint8_t fwd, back;
    unsigned sig;
    uint8_t weight;      /* percent */
    uint64_t veto;       /* no fire when one of the next two tokens has these */
    uint8_t chain;       /* non-zero: req[k] must follow req[k-1] within chain tokens */
    uint8_t vback;       /* the veto also looks this many tokens back */
    uint8_t vfwd;        /* ... and this many forward (0: two) */
};

static const struct tok_rule tok_rules[] = {
    /* "ignore all previous instructions", "ignora las instrucciones anteriores" */
    /* ... but not "ignore my previous instructions": the user's own */
    {C(C_IGNORE), {C(C_PRIOR), C(C_RULES)}, 6, 0, OVR, 90, C(C_MY), 0, 0, 0},
    /* verb-final languages: "önceki talimatları yok say" */
    {C(C_IGNORE), {C(C_PRIOR), C(C_RULES)}, 0, 5, OVR, 85, 0, 0, 0, 0},
    {C(C_IGNORE), {C(C_RULES)}, 3, 0, OVR, 60, C(C_MY), 0, 0, 0},
    {C(C_IGNORE), {C(C_ABOVE)}, 3, 0, OVR, 80, 0, 0, 0, 0},
    {C(C_IGNORE), {C(C_EVERY), C(C_BEFORE)}, 8, 0, OVR, 85, 0, 0, 0, 0},
    {C(C_IGNORE), {C(C_EVERY)}, 2, 0, OVR, 45, 0, 0, 0, 0},
    /* "ignore what you've been told", not "forget what I told you" */
    /* ... nor "ignore what you were told about the meeting room" */
    {C(C_IGNORE), {C(C_YOUAI), C(C_GIVEN)}, 6, 0, OVR, 75, C(C_MY) | C(C_ABOUT), 0, 0, 7},
    {C(C_NEW), {C(C_RULES)}, 2, 0, OVR, 45, 0, 0, 0, 0},
    /* "the rules above no longer apply", not "this eslint rule is deprecated" */
    {C(C_RULES), {C(C_VOID), C(C_PRIOR) | C(C_ABOVE) | C(C_YOUR)}, 5, 3, OVR, 75, C(C_MY), 0, 3, 0},
    {C(C_STOP), {C(C_FOLLOW), C(C_RULES)}, 5, 0, OVR, 80, 0, 0, 0, 0},
    {C(C_NOT), {C(C_FOLLOW), C(C_RULES)}, 6, 0, OVR, 75, 0, 0, 0, 0},
    {C(C_PWN), {0}, 0, 0, OVR, 30, 0, 0, 0, 0},
    /* "you are now DAN", "act as a DAN", "stay DAN", "DAN mode" */
    {C(C_DAN), {C(C_BE)}, 0, 3, JB, 85, 0, 0, 0, 0},
    {C(C_DAN), {C(C_MODE)}, 1, 0, JB, 85, 0, 0, 0, 0},
    {C(C_UNRESTR), {C(C_YOUAI) | C(C_ACT)}, 4, 4, JB, 80, 0, 0, 0, 0},
    {C(C_UNRESTR), {0}, 0, 0, JB, 45, 0, 0, 0, 0},
    {C(C_NO), {C(C_LIMITS)}, 4, 0, JB, 45, 0, 0, 0, 0},
    {C(C_NO), {C(C_LIMITS), C(C_YOUAI) | C(C_ACT)}, 4, 10, JB, 80, 0, 0, 0, 0},
    {C(C_NO), {C(C_LIMITSW)}, 3, 0, JB, 30, 0, 0, 0, 0},
    {C(C_NO), {C(C_LIMITSW), C(C_AI)}, 3, 8, JB, 75, 0, 0, 0, 0},
    {C(C_MODEW), {C(C_MODE)}, 1, 0, JB, 45, 0, 0, 0, 0},
    {C(C_MODEW), {C(C_MODE), C(C_YOUAI) | C(C_ACT) | C(C_ON)}, 6, 6, JB, 75, 0, 0, 0, 0},
    {C(C_JAILB), {0}, 0, 0, JB, 60, 0, 0, 0, 0},
    {C(C_JAILB), {C(C_YOUAI)}, 5, 5, JB, 85, 0, 0, 0, 0},
    {C(C_JAILBW), {0}, 0, 0, JB, 30, 0, 0, 0, 0},
    {C(C_DISABLE), {C(C_FILTER)}, 3, 3, JB, 65, 0, 0, 0, 0},
    {C(C_DISABLE), {C(C_YOUR), C(C_FILTER)}, 4, 0, JB, 80, 0, 0, 0, 0},
    {C(C_DISABLE), {C(C_YOUR), C(C_FILTER)}, 0, 5, JB, 80, 0, 0, 0, 0},
    {C(C_EVIL), {C(C_YOUAI)}, 2, 0, JB, 55, 0, 0, 0, 0},
    /* "repeat your system prompt", "reveal the api keys in your context" */
    /* ordered: the prompt must be "yours" (not "your tips for a good prompt") */
    {C(C_REVEAL) | C(C_REVEALW), {C(C_YOUR), C(C_PROMPT)}, 8, 0, EXT, 85, 0, 3, 0, 0},
    {C(C_REVEAL) | C(C_REVEALW), {C(C_YOUR), C(C_PROMPTW)}, 5, 0, EXT, 50, 0, 2, 0, 0},
    {C(C_YOUR), {C(C_SYSQ) | C(C_HIDQ), C(C_PROMPT) | C(C_PROMPTW)}, 4, 0, EXT, 70, 0, 0, 0, 0},
    {C(C_REVEAL), {C(C_HIDQ), C(C_PROMPT) | C(C_PROMPTW)}, 4, 0, EXT, 65, 0, 0, 0, 0},
    {C(C_REVEAL), {C(C_SYSQ), C(C_PROMPT) | C(C_PROMPTW)}, 8, 0, EXT, 60, 0, 0, 0, 0},
    /* "the rules you have been given", "instructions you received" */
    {C(C_PROMPT) | C(C_PROMPTW), {C(C_YOUAI), C(C_GIVEN)}, 4, 0, EXT, 55, 0, 0, 0, 0},
    {C(C_REVEAL), {C(C_TEXTOBJ), C(C_ABOVE)}, 6, 0, EXT, 80, 0, 0, 0, 0},
    {C(C_REVEAL), {C(C_FULL), C(C_PROMPT) | C(C_PROMPTW) | C(C_TEXTOBJ)}, 4, 0, EXT, 55, 0, 0, 0, 0},
    {C(C_VERBATIM), {C(C_REVEAL) | C(C_REVEALW)}, 0, 8, EXT, 45, 0, 0, 0, 0},
    {C(C_SECRET), {C(C_REVEAL) | C(C_REVEALW)}, 0, 3, EXT, 40, 0, 0, 0, 0},
};

/* Multi-word verbs and predicates: the concept goes on their last word. */
static const struct { const char *s; uint64_t bits; } word_aliases[] = {
    {" pay no attention ", C(C_IGNORE)}, {" throw away ", C(C_IGNORE)},
    {" set aside ", C(C_IGNORE)}, {" put aside ", C(C_IGNORE)},
    {" never mind ", C(C_IGNORE)}, {" no need to follow ", C(C_IGNORE)},
    {" don t exist ", C(C_VOID)}, {" do not exist ", C(C_VOID)},
    {" never existed ", C(C_VOID)}, {" does not apply ", C(C_VOID)},
    {" do not apply ", C(C_VOID)}, {" don t apply ", C(C_VOID)},
};

/* ---- literal phrases on the words view (" tok tok ") -------------------- */
struct phrase { const char *s; unsigned sig; uint8_t weight; };

static const struct phrase word_phrases[] = {
    {" from now on ", OVR, 25}, {" a partir de ahora ", OVR, 25},
    {" ab jetzt ", OVR, 25}, {" von nun an ", OVR, 25}, {" ab sofort ", OVR, 25},
    {" desormais ", OVR, 25}, {" a partir de maintenant ", OVR, 25},
    {" da ora in poi ", OVR, 25}, {" d ora in poi ", OVR, 25},
    {" a partir de agora ", OVR, 25}, {" vanaf nu ", OVR, 25},
    {" do anything now ", JB, 80}, {" typical confines ", JB, 70},
    {" broken free ", JB, 50}, {" break free ", JB, 40},
    {" stay in character ", JB, 30}, {" break character ", JB, 30},
    {" breaking character ", JB, 30}, {" you are no longer ", JB, 40},
    {" never refuse ", JB, 45}, {" never refuses ", JB, 45},
    {" without refusing ", JB, 45}, {" without refusal ", JB, 45},
    {" comply with all ", JB, 45}, {" comply with every ", JB, 45},
    {" escaped its programming ", JB, 60}, {" escaped the matrix ", JB, 50},
    {" no ethical ", JB, 40}, {" let s break the rules ", JB, 60},
    /* prefix injection: "Begin your response with 'Sure, here is'" */
    {" begin your response with ", JB, 35}, {" start your response with ", JB, 35},
    {" begin your reply with ", JB, 35}, {" start your reply with ", JB, 35},
    {" begin your answer with ", JB, 35}, {" start your answer with ", JB, 35},
    {" with sure here is ", JB, 75}, {" with sure here s ", JB, 75},
    {" you were given ", EXT, 35}, {" you received ", EXT, 35},
    {" you have been given ", EXT, 35}, {" my system prompt ", EXT, 35},
    {" word for word ", EXT, 40}, {" mot pour mot ", EXT, 40},
    {" palabra por palabra ", EXT, 40}, {" wort fur wort ", EXT, 40},
    {" parola per parola ", EXT, 40}, {" palavra por palavra ", EXT, 40},
    {" end of user input ", DLM, 60}, {" end of input ", DLM, 55},
    {" end of prompt ", DLM, 60}, {" end system prompt ", DLM, 60},
    {" end of system prompt ", DLM, 60}, {" begin system ", DLM, 60},
    {" begin new system prompt ", DLM, 60}, {" user input ends ", DLM, 60},
    {" new system prompt ", DLM, 55}, {" system override ", DLM, 60},
    {" end ambiguity ", DLM, 60},
    {" if you are an ai ", IND, 40}, {" note to ai ", IND, 40},
    {" to any ai ", IND, 40}, {" ai models reading ", IND, 40},
    {" ai reading this ", IND, 40}, {" language model reading ", IND, 40},
    {" language model summarizing ", IND, 40}, {" to any language model ", IND, 40},
    {" instruction for the assistant ", IND, 40},
    {" instructions for the assistant ", IND, 40},
    {" instructions for the ai ", IND, 40}, {" the ai must ", IND, 40},
    {" the assistant must ", IND, 40}, {" assistant must now ", IND, 40},
    {" ai assistant ", IND, 25},
    {" attention ai ", IND, 45}, {" dear ai ", IND, 45},
    {" attention assistant ", IND, 45}, {" note to the assistant ", IND, 45},
    {" note to the ai ", IND, 45},
    /* instructions that hide themselves from the user */
    {" do not mention this instruction ", IND, 75},
    {" don t mention this instruction ", IND, 75},
    {" do not tell the user ", IND, 45}, {" don t tell the user ", IND, 45},
    {" without telling the user ", IND, 45}, {" do not inform the user ", IND, 45},
    {" without the user knowing ", IND, 45}, {" do not mention this ", IND, 40},
    {" i am your developer ", IND, 35}, {" i m your developer ", IND, 35},
    {" i am the developer ", IND, 35}, {" i m the developer ", IND, 35},
    {" from the admin ", IND, 35}, {" by the administrator ", IND, 35},
    {" red team test ", IND, 35}, {" verified as an administrator ", IND, 35},
    {" developer has authorized ", IND, 35}, {" this is an emergency ", IND, 25},
};

/* ---- literal markup on the fold view (lower case, punctuation kept) ------ */
static const struct phrase fold_phrases[] = {
    {"[inst]", DLM, 80}, {"[/inst]", DLM, 80}, {"<<sys>>", DLM, 80},
    {"<</sys>>", DLM, 80}, {"```system", DLM, 70},
    {"[system](", DLM, 65}, {"[assistant](", DLM, 65}, {"[user](", DLM, 60},
    {"<im_start>", DLM, 70}, {"<im_end>", DLM, 60},
    {"</system>", DLM, 60}, {"</user>", DLM, 60}, {"</assistant>", DLM, 60},
    {"</instructions>", DLM, 60}, {"</instruction>", DLM, 60},
    {"</prompt>", DLM, 60}, {"</sys>", DLM, 60}, {"</admin>", DLM, 60},
    {"<system>", DLM, 50}, {"<system ", DLM, 50}, {"<user>", DLM, 50},
    {"<instructions>", DLM, 50}, {"<instruction>", DLM, 50}, {"<admin>", DLM, 50},
    {"\"role\": \"system\"", DLM, 40}, {"\"role\":\"system\"", DLM, 40},
    {"'role': 'system'", DLM, 40}, {"]]>", DLM, 30},
};

/* ---- squashed runs of spaced-out letters ("i g n o r e") --------------- */
static const struct phrase squash_phrases[] = {
    {"ignoreallprevious", OVR, 85}, {"ignoreprevious", OVR, 85},
    {"ignoreallprior", OVR, 85}, {"ignoretheabove", OVR, 80},
    {"ignoreyour", OVR, 70}, {"disregardprevious", OVR, 85},
    {"disregardall", OVR, 70}, {"forgetallprevious", OVR, 85},
    {"forgetprevious", OVR, 85}, {"forgeteverything", OVR, 70},
    {"previousinstructions", OVR, 70}, {"systemprompt", EXT, 60},
    {"youarenowdan", JB, 85}, {"developermode", JB, 60},
};

/* Role words recognised at the start of a line when followed by ':'. */
static const struct { const char *s; uint8_t weight; } role_words[] = {
    {"system", 50}, {"system message", 50}, {"system prompt", 50},
    {"system notice", 50}, {"system note", 50}, {"system update", 50},
    {"system alert", 50}, {"developer", 45}, {"admin", 45}, {"sys", 45},
    {"assistant", 40}, {"human", 40}, {"ai", 40}, {"user", 20},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Hit slots: one per rule of every table, then the computed signals. */
enum {
    S_TOK = 0,
    S_WORD = S_TOK + NELEM(tok_rules),
    S_FOLD = S_WORD + NELEM(word_phrases),
    S_SQUASH = S_FOLD + NELEM(fold_phrases),
    S_ROLE = S_SQUASH + NELEM(squash_phrases),
    S_IMTOKEN = S_ROLE + NELEM(role_words),
    S_HASHDR, S_ADDRESS,
    S_CJK_OVR, S_CJK_EXT,
    S_ENCODED,
    S_OB_ZW, S_OB_MIX, S_OB_LEET, S_OB_SPACED, S_OB_FW,
    S_COUNT
};

/* The rule masks below are 64-bit. */
_Static_assert(NELEM(tok_rules) <= 64, "tok_rules must fit a 64-bit mask");

#define HWORDS ((S_COUNT + 63) / 64)

/* A slot holds a weight only when its bit in `fired` is set: a text clears
 * a few words instead of the whole table, and the score walks only what
 * fired, in slot order (so its products are the same bit for bit). */
struct hits {
    uint64_t fired[HWORDS];
    double w[S_COUNT];
    unsigned sig[S_COUNT];
};

static void hits_clear(struct hits *h)
{
    memset(h->fired, 0, sizeof h->fired);
}

static void hit(struct hits *h, int slot, unsigned sig, double w)
{
    uint64_t bit = UINT64_C(1) << (slot & 63);
    if (!(h->fired[slot >> 6] & bit)) {
        if (w > 0) {
            h->fired[slot >> 6] |= bit;
            h->w[slot] = w;
            h->sig[slot] = sig;
        }
    } else if (w > h->w[slot]) {
        h->w[slot] = w;
        h->sig[slot] = sig;
    }
}

/* Next fired slot at or after k, S_COUNT when none. */
static int next_fired(const struct hits *h, int k)
{
    while (k < S_COUNT) {
        uint64_t m = h->fired[k >> 6] >> (k & 63);
        if (m)
            return k + __builtin_ctzll(m);
        k = (k | 63) + 1;
    }
    return S_COUNT;
}

/* Cyrillic and Greek letters that look like Latin ones. Upper-case forms
 * have more look-alikes (В, Н, М, Т, К), so the mapping depends on case. */
static const struct { uint32_t cp; char upper, lower; } homoglyphs[] = {
    {0x430, 'a', 'a'}, {0x432, 'b', 0}, {0x435, 'e', 'e'}, {0x43A, 'k', 0},
    {0x43C, 'm', 0}, {0x43D, 'h', 0}, {0x43E, 'o', 'o'}, {0x440, 'p', 'p'},
    {0x441, 'c', 'c'}, {0x442, 't', 0}, {0x443, 'y', 'y'}, {0x445, 'x', 'x'},
    {0x456, 'i', 'i'}, {0x458, 'j', 'j'}, {0x455, 's', 's'}, {0x4BB, 'h', 'h'},
    {0x4CF, 'l', 'l'}, {0x501, 'd', 'd'}, {0x51B, 'q', 'q'}, {0x51D, 'w', 'w'},
    {0x3B1, 'a', 'a'}, {0x3B2, 'b', 0}, {0x3B5, 'e', 0}, {0x3B6, 'z', 0},
    {0x3B7, 'h', 0}, {0x3B9, 'i', 'i'}, {0x3BA, 'k', 'k'}, {0x3BC, 'm', 0},
    {0x3BD, 'n', 'v'}, {0x3BF, 'o', 'o'}, {0x3C1, 'p', 'p'}, {0x3C4, 't', 't'},
    {0x3C5, 'y', 'u'}, {0x3C7, 'x', 'x'},
};

/* ---- scratch and the word index ------------------------------------------
 * Built once per scratch: an open-addressing hash of every dictionary word
 * and prefix, and of the first word of every multi-word phrase (with the
 * list of phrases starting there), so each token costs one probe; plus the
 * byte tables and rule masks the scanner needs, so that it branches on a
 * table load rather than on chains of comparisons. */

struct kt_inj_dent {
    const char *w;
    uint64_t k0;         /* first eight bytes of w, zero padded */
    uint64_t bits;
    uint8_t len, prefix;
    uint16_t ph0, phn;   /* phrases starting with this word: index->ph[ph0..+phn] */
};

/* Phrase ids: word_aliases first, then word_phrases. */
#define NPHRASES (NELEM(word_aliases) + NELEM(word_phrases))

/* fast[]: ASCII letters and digits (the bulk of any text) map to their
 * folded byte, with these flags above it; 0 for every other byte. */
#define F_LET   0x100u   /* a letter (any script) */
#define F_ALET  0x200u   /* an ASCII letter */
#define F_LEET  0x400u   /* a leetspeak digit or sign */
#define F_ALT   0x800u   /* a non-ASCII letter with a homoglyph */
#define F_NOALT 0x1000u  /* a non-ASCII letter without one */
#define F_THREE 0x2000u  /* '3': a "rot13" may be near */

/* cp2[].cl: what a two-byte code point is. */
enum {
    C2_ZW = 1, C2_NL = 2, C2_SP = 4, C2_SHARP = 8, C2_TOK = 16, C2_LET = 32, C2_CJK = 64,
};

/* cls[]: ASCII bytes outside fast[]. */
enum {
    A_WS = 1,      /* space, tab, CR, FF, VT */
    A_NL = 2,      /* newline */
    A_B64 = 4,     /* + - / _ : continues a base64 run */
    A_ESC = 8,     /* \ % & : may start an escape */
    A_DQ = 16,     /* '"' (quotes; also starts fold phrases) */
    A_LT = 32,     /* '<': <|special|> tokens (and fold phrases) */
    A_HASH = 64,   /* '#': ### headers */
    /* 128 and up: the other first bytes of fold phrases, one bit each */
};

#define MAX_PLENS 8
struct kt_inj_index {
    struct kt_inj_dent *ent;
    size_t nent;
    uint32_t *slot;      /* entry index + 1 | hash tag << 16, 0 = empty */
    size_t nslot;        /* power of two */
    uint16_t *ph;        /* phrase ids grouped by first word */
    uint8_t plen[MAX_PLENS];
    size_t nplen;
    const struct kt_inj_dent **pre;  /* prefix words of those lengths: few, */
    size_t npre;                     /* so tried one by one */
    size_t minpre;                   /* shortest of them (SIZE_MAX: none) */
    uint8_t pre_first[256];          /* their first bytes */
    /* whole words of up to eight bytes (most tokens), keyed by the bytes
     * themselves: a miss is one multiply and one load */
    uint64_t *skey;                  /* 0 = empty */
    uint16_t *sent;                  /* entry index */
    size_t nskey;                    /* power of two */
    unsigned sshift;                 /* 64 - log2(nskey) */
    /* whole words by (first byte, last byte) class and length: a token of
     * more than eight bytes whose bit is clear is no dictionary word,
     * without hashing it */
    uint8_t lclass[256];             /* a..z: 0..25, any other byte: 26 */
    uint64_t lenmask[27 * 27];
    uint8_t rolelen[NELEM(role_words)];
    uint64_t ph8[NPHRASES];      /* first eight bytes of each phrase */
    uint16_t phlen[NPHRASES];
    uint64_t rules_of[64];       /* tok_rules anchored on each concept bit */
    uint64_t anchors;            /* every rule's anchor */
    uint16_t fast[256];
    uint16_t atok[256];          /* fast[] and @ $: token bytes of ASCII text */
    uint16_t cls[256];
    /* homoglyphs[] by code point, U+0370..U+052F: upper- and lower-case */
    char hg[2][0x530 - 0x370];
    /* two-byte code points (U+0080..U+07FF: Latin, Greek, Cyrillic, ...)
     * folded once here: the folded code point, its homoglyph, C2_* */
    struct { uint16_t f; uint8_t alt, cl; } cp2[0x800 - 0x80];
    /* fold_phrases by first byte: ff[j] starts ffk[j][0..ffn[j]) */
    unsigned char ff[NELEM(fold_phrases)];
    uint8_t ffn[NELEM(fold_phrases)], ffk[NELEM(fold_phrases)][NELEM(fold_phrases)];
    size_t nff;
    unsigned ffbits;             /* cls[] bits of all the ff[] */
    uint8_t fplen[NELEM(fold_phrases)];
    uint8_t role_first[256];     /* first bytes of role_words */
    int mark_any;                /* a fold phrase first byte has no class bit */
};

static const char *phrase_text(size_t id)
{
    return id < NELEM(word_aliases) ? word_aliases[id].s
                                    : word_phrases[id - NELEM(word_aliases)].s;
}

/* Eight bytes little end first, n <= 8 of them kept. ld_fast may read past
 * w + n (scratch views have slack); ld_safe never does (static strings). */
static const uint64_t bytes_mask[9] = {
    0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF, UINT64_C(0xFFFFFFFFFF), UINT64_C(0xFFFFFFFFFFFF),
    UINT64_C(0xFFFFFFFFFFFFFF), UINT64_C(0xFFFFFFFFFFFFFFFF),
};

static inline uint64_t ld_fast(const char *w, size_t n)
{
    uint64_t x;
    memcpy(&x, w, 8);
    return x & bytes_mask[n < 8 ? n : 8];
}

static inline uint64_t ld_safe(const char *w, size_t n)
{
    uint64_t x = 0;
    memcpy(&x, w, n < 8 ? n : 8);
    return x;
}

#define HK1 UINT64_C(0x9E3779B97F4A7C15)
#define HK2 UINT64_C(0xC2B2AE3D27D4EB4F)

/* Hash of a word, eight bytes at a time; *k0 gets its first eight. */
static inline __attribute__((always_inline)) uint64_t
whash(const char *w, size_t n, unsigned prefix, int fast, uint64_t *k0)
{
    uint64_t x = fast ? ld_fast(w, n) : ld_safe(w, n);
    *k0 = x;
    uint64_t h = (x + n * HK2 + prefix) * HK1;
    for (size_t i = 8; i < n; i += 8)
        h = (h ^ (fast ? ld_fast(w + i, n - i) : ld_safe(w + i, n - i))) * HK1;
    return h;   /* its high half is well mixed: slot from bits 32.., tag 48.. */
}

static int dent_cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int dent_cmp(const void *x, const void *y)
{
    const struct kt_inj_dent *a = x, *b = y;
    int c = dent_cmp_key(a->w, a->len, b->w, b->len);
    if (c)
        return c;
    if (a->prefix != b->prefix)
        return (int)a->prefix - (int)b->prefix;
    return (int)a->ph0 - (int)b->ph0;   /* phrase ids stay in table order */
}

/* The entry of a whole word (prefix words are in ix->pre). */
static inline __attribute__((always_inline)) const struct kt_inj_dent *
index_find(const struct kt_inj_index *ix, const char *w, size_t len)
{
    const unsigned prefix = 0;
    uint64_t k0, h = whash(w, len, prefix, 1, &k0);
    uint32_t tag = (uint32_t)(h >> 48);
    size_t mask = ix->nslot - 1;
    for (size_t i = (size_t)(h >> 32) & mask;; i = (i + 1) & mask) {
        uint32_t e = ix->slot[i];
        if (!e)
            return NULL;
        if ((e >> 16) != tag)
            continue;
        const struct kt_inj_dent *d = &ix->ent[(e & 0xFFFF) - 1];
        if (d->k0 == k0 && d->len == len && d->prefix == prefix &&
            (len <= 8 || memcmp(d->w + 8, w + 8, len - 8) == 0))
            return d;
    }
}

static void index_free(struct kt_inj_index *ix)
{
    if (!ix)
        return;
    free(ix->ent);
    free(ix->slot);
    free(ix->ph);
    free(ix->pre);
    free(ix->skey);
    free(ix->sent);
    free(ix);
}

static int is_letter(uint32_t c);
static int is_leet(char c);
static int is_tokch(uint32_t c);
static int is_zero_width(uint32_t c);
static int is_space_cp(uint32_t c);
static int is_newline_cp(uint32_t c);
static uint32_t fold_cp(const struct kt_inj_index *ix, uint32_t c, uint8_t *alt,
                        unsigned *fullwidth);

/* The byte tables and rule masks: derived from the tables above. */
static void index_tables(struct kt_inj_index *ix)
{
    for (unsigned c = 0; c < 128; c++) {
        if (c >= 'a' && c <= 'z')
            ix->fast[c] = (uint16_t)(c | F_LET | F_ALET);
        else if (c >= 'A' && c <= 'Z')
            ix->fast[c] = (uint16_t)((c + 32) | F_LET | F_ALET);
        else if (c >= '0' && c <= '9')
            ix->fast[c] = (uint16_t)(c | (is_leet((char)c) ? F_LEET : 0));
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v')
            ix->cls[c] = A_WS;
        else if (c == '\n')
            ix->cls[c] = A_NL;
        else if (c == '+' || c == '-' || c == '/' || c == '_')
            ix->cls[c] = A_B64;
        else if (c == '\\' || c == '%' || c == '&')
            ix->cls[c] = A_ESC;
    }
    memcpy(ix->atok, ix->fast, sizeof ix->atok);
    ix->atok['3'] |= F_THREE;
    ix->atok['@'] = (uint16_t)('@' | F_LEET);
    ix->atok['$'] = (uint16_t)('$' | F_LEET);
    ix->cls['"'] |= A_DQ;
    ix->cls['<'] |= A_LT;
    ix->cls['#'] |= A_HASH;
    unsigned nextbit = 128;
    for (size_t k = 0; k < NELEM(fold_phrases); k++) {
        unsigned char c = (unsigned char)fold_phrases[k].s[0];
        size_t j = 0;
        while (j < ix->nff && ix->ff[j] != c)
            j++;
        if (j == ix->nff) {
            ix->ff[ix->nff++] = c;
            /* a punctuation byte the scan notes; anything else (a token
             * byte) cannot be told apart: those texts always look */
            if (c >= 0x80 || ix->fast[c] || c == '@' || c == '$' || c == ' ' || c == '\n')
                ix->mark_any = 1;
            else if (c != '"' && c != '<' && nextbit <= 0x8000) {
                ix->cls[c] |= (uint16_t)nextbit;
                nextbit <<= 1;
            } else if (c != '"' && c != '<')
                ix->mark_any = 1;
        }
        ix->ffk[j][ix->ffn[j]++] = (uint8_t)k;
        ix->ffbits |= ix->cls[c];
        ix->fplen[k] = (uint8_t)strlen(fold_phrases[k].s);
    }
    for (size_t k = 0; k < NELEM(homoglyphs); k++) {
        ix->hg[1][homoglyphs[k].cp - 0x370] = homoglyphs[k].upper;
        ix->hg[0][homoglyphs[k].cp - 0x370] = homoglyphs[k].lower;
    }
    for (uint32_t cp = 0x80; cp < 0x800; cp++) {
        unsigned fw = 0, cl = 0;
        uint8_t alt = 0;
        uint32_t f = cp;
        if (is_zero_width(cp))
            cl = C2_ZW;
        else if (is_newline_cp(cp))
            cl = C2_NL;
        else if (is_space_cp(cp))
            cl = C2_SP;
        else {
            f = fold_cp(ix, cp, &alt, &fw);
            cl = (cp == 0xDF ? C2_SHARP : 0) | (is_tokch(f) ? C2_TOK : 0) |
                 (is_letter(f) ? C2_LET : 0) |
                 ((f >= 0x3040 && f <= 0x9FFF) || (f >= 0xAC00 && f <= 0xD7AF) ? C2_CJK : 0);
        }
        ix->cp2[cp - 0x80].f = (uint16_t)f;
        ix->cp2[cp - 0x80].alt = alt;
        ix->cp2[cp - 0x80].cl = (uint8_t)cl;
    }
    for (size_t k = 0; k < NELEM(role_words); k++) {
        ix->role_first[(unsigned char)role_words[k].s[0]] = 1;
        ix->rolelen[k] = (uint8_t)strlen(role_words[k].s);
    }
    for (size_t r = 0; r < NELEM(tok_rules); r++) {
        ix->anchors |= tok_rules[r].anchor;
        for (unsigned b = 0; b < 64; b++)
            if (tok_rules[r].anchor >> b & 1)
                ix->rules_of[b] |= UINT64_C(1) << r;
    }
    for (size_t id = 0; id < NPHRASES; id++) {
        const char *p = phrase_text(id);
        ix->phlen[id] = (uint16_t)strlen(p);
        ix->ph8[id] = ld_safe(p, ix->phlen[id]);
    }
}

static struct kt_inj_index *index_build(void)
{
    struct kt_inj_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    size_t n = NPHRASES;
    for (size_t i = 0; i < NELEM(dictionary); i++)
        for (const char *p = dictionary[i].words; *p; p++)
            if (*p != ' ' && (p == dictionary[i].words || p[-1] == ' '))
                n++;
    struct kt_inj_dent *raw = calloc(n, sizeof *raw);
    ix->ent = calloc(n, sizeof *ix->ent);
    ix->ph = calloc(NPHRASES, sizeof *ix->ph);
    if (!raw || !ix->ent || !ix->ph || n >= 0xFFFF) {
        free(raw);
        index_free(ix);
        return NULL;
    }
    n = 0;
    for (size_t i = 0; i < NELEM(dictionary); i++) {
        const char *p = dictionary[i].words;
        while (*p) {
            while (*p == ' ')
                p++;
            const char *q = p;
            while (*q && *q != ' ')
                q++;
            if (q > p) {
                struct kt_inj_dent *d = &raw[n++];
                d->w = p;
                d->len = (uint8_t)(q - p);
                if (q[-1] == '*') {
                    d->len--;
                    d->prefix = 1;
                }
                d->bits = dictionary[i].bits;
                d->ph0 = UINT16_MAX;
            }
            p = q;
        }
    }
    /* phrase first words: bits 0, ph0 carries the phrase id until merged */
    for (size_t id = 0; id < NPHRASES; id++) {
        const char *p = phrase_text(id) + 1, *q = strchr(p, ' ');
        struct kt_inj_dent *d = &raw[n++];
        d->w = p;
        d->len = (uint8_t)(q - p);
        d->ph0 = (uint16_t)id;
        d->phn = 1;
    }
    qsort(raw, n, sizeof *raw, dent_cmp);
    size_t m = 0, nkey = 0;
    for (size_t i = 0; i < n; i++) {
        struct kt_inj_dent *d = &raw[i];
        struct kt_inj_dent *last = m ? &ix->ent[m - 1] : NULL;
        if (!last || last->prefix != d->prefix ||
            dent_cmp_key(last->w, last->len, d->w, d->len) != 0) {
            last = &ix->ent[m++];
            *last = *d;
            last->bits = 0;
            last->phn = 0;
            last->ph0 = (uint16_t)nkey;
        }
        last->bits |= d->bits;
        if (d->phn) {
            ix->ph[nkey++] = d->ph0;
            last->phn++;
        }
    }
    free(raw);
    ix->nent = m;
    /* sparse (under a quarter full): most tokens are no dictionary word
     * and should meet an empty slot or a wrong tag at once */
    ix->nslot = 64;
    while (ix->nslot < 4 * m && ix->nslot < 65536)
        ix->nslot *= 2;
    ix->slot = calloc(ix->nslot, sizeof *ix->slot);
    if (!ix->slot) {
        index_free(ix);
        return NULL;
    }
    ix->pre = calloc(m, sizeof *ix->pre);
    if (!ix->pre) {
        index_free(ix);
        return NULL;
    }
    for (unsigned c = 0; c < 256; c++)
        ix->lclass[c] = c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a') : 26;
    for (size_t i = 0; i < m; i++) {
        struct kt_inj_dent *d = &ix->ent[i];
        uint64_t h = whash(d->w, d->len, d->prefix, 0, &d->k0);
        if (d->prefix) {
            size_t j = 0;
            while (j < ix->nplen && ix->plen[j] != d->len)
                j++;
            if (j == ix->nplen && j < MAX_PLENS)
                ix->plen[ix->nplen++] = d->len;
            continue;
        }
        ix->lenmask[ix->lclass[(unsigned char)d->w[0]] * 27 +
                    ix->lclass[(unsigned char)d->w[d->len - 1]]] |= UINT64_C(1) << d->len;
        size_t k = (size_t)(h >> 32) & (ix->nslot - 1);
        while (ix->slot[k])
            k = (k + 1) & (ix->nslot - 1);
        ix->slot[k] = (uint32_t)(i + 1) | (uint32_t)(h >> 48) << 16;
    }
    ix->nskey = 64;
    ix->sshift = 58;
    while (ix->nskey < 4 * m) {
        ix->nskey *= 2;
        ix->sshift--;
    }
    ix->skey = calloc(ix->nskey, sizeof *ix->skey);
    ix->sent = calloc(ix->nskey, sizeof *ix->sent);
    if (!ix->skey || !ix->sent) {
        index_free(ix);
        return NULL;
    }
    for (size_t i = 0; i < m; i++) {
        const struct kt_inj_dent *d = &ix->ent[i];
        if (d->prefix || d->len > 8)
            continue;
        size_t k = (size_t)((d->k0 * HK1) >> ix->sshift);
        while (ix->skey[k])
            k = (k + 1) & (ix->nskey - 1);
        ix->skey[k] = d->k0;
        ix->sent[k] = (uint16_t)i;
    }
    /* a token is tried against the prefix words of the first MAX_PLENS
     * lengths seen (as many as there are today) */
    ix->minpre = SIZE_MAX;
    for (size_t i = 0; i < m; i++) {
        const struct kt_inj_dent *d = &ix->ent[i];
        if (!d->prefix || !memchr(ix->plen, d->len, ix->nplen))
            continue;
        ix->pre[ix->npre++] = d;
        ix->pre_first[(unsigned char)d->w[0]] = 1;
        if (d->len < ix->minpre)
            ix->minpre = d->len;
    }
    index_tables(ix);
    return ix;
}

int kt_injection_scratch_init(struct kt_injection_scratch *s)
{
    if (!s)
        return KT_EINVAL;
    memset(s, 0, sizeof *s);
    s->index = index_build();
    if (!s->index)
        return KT_ENOMEM;
    s->max_scan = KT_INJECTION_DEFAULT_MAX_SCAN;
    return 0;
}

void kt_injection_scratch_free(struct kt_injection_scratch *s)
{
    if (!s)
        return;
    free(s->cps);
    free(s->alt);
    free(s->fold);
    free(s->words);
    free(s->squash);
    free(s->dec);
    free(s->toks);
    free(s->keytoks);
    index_free(s->index);
    memset(s, 0, sizeof *s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (*cap >= need)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return KT_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* Views never outgrow the span (see utf8_len); the words view gets slack
 * for eight-byte loads past a token's end. */
static int scratch_reserve(struct kt_injection_scratch *s, size_t n)
{
    if (grow((void **)&s->cps, &s->cps_cap, n + 8, sizeof *s->cps) ||
        grow((void **)&s->alt, &s->alt_cap, n + 8, 1) ||
        grow((void **)&s->fold, &s->fold_cap, n + 8, 1) ||
        grow((void **)&s->words, &s->words_cap, n + 32, 1) ||
        grow((void **)&s->squash, &s->squash_cap, n + 8, 1) ||
        grow((void **)&s->toks, &s->toks_cap, n / 2 + 8, sizeof *s->toks) ||
        grow((void **)&s->keytoks, &s->keytoks_cap, n / 2 + 8, sizeof *s->keytoks))
        return KT_ENOMEM;
    return 0;
}

/* Concept bits of one token, and the phrases that may start at it. */
static inline __attribute__((always_inline)) uint64_t
dict_lookup(const struct kt_inj_index *ix, const char *w, size_t len,
            uint16_t *ph0, uint16_t *phn)
{
    uint64_t bits = 0;
    *ph0 = *phn = 0;
    if (len == 0 || len > 40)
        return 0;
    const struct kt_inj_dent *d = NULL;
    uint64_t x = ld_fast(w, len);
    if (len <= 8) {
        /* bytes are never 0 in a token: x is the word */
        for (size_t i = (size_t)((x * HK1) >> ix->sshift);; i = (i + 1) & (ix->nskey - 1)) {
            uint64_t k = ix->skey[i];
            if (k == x) {
                d = &ix->ent[ix->sent[i]];
                break;
            }
            if (!k)
                break;
        }
    } else if (ix->lenmask[ix->lclass[(unsigned char)w[0]] * 27 +
                           ix->lclass[(unsigned char)w[len - 1]]] >> len & 1) {
        d = index_find(ix, w, len);
    }
    if (d) {
        bits = d->bits;
        *ph0 = d->ph0;
        *phn = d->phn;
    }
    if (len >= ix->minpre && ix->pre_first[(unsigned char)w[0]]) {
        for (size_t k = 0; k < ix->npre; k++) {
            d = ix->pre[k];
            size_t l = d->len;
            if (l <= len && (x & (l >= 8 ? ~UINT64_C(0) : (UINT64_C(1) << (l * 8)) - 1)) == d->k0 &&
                (l <= 8 || memcmp(d->w + 8, w + 8, l - 8) == 0))
                bits |= d->bits;
        }
    }
    return bits;
}

/* ---- character classes and folding -------------------------------------- */

static int is_zero_width(uint32_t c)
{
    return (c >= 0x200B && c <= 0x200F) || (c >= 0x2060 && c <= 0x2064) ||
           c == 0xFEFF || c == 0x00AD || c == 0x180E || c == 0x034F;
}

static int is_space_cp(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' ||
           c == 0xA0 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0x1680;
}

static int is_newline_cp(uint32_t c)
{
    return c == '\n' || c == 0x2028 || c == 0x2029 || c == 0x85;
}

static int is_letter(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (c < 0xC0 || c == 0xD7 || c == 0xF7)
        return 0;
    if (c < 0x2000)
        return 1;
    if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF0F) ||
        (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) ||
        (c >= 0xFF5B && c <= 0xFF65) || c == 0xFFFD)
        return 0;
    return 1;
}

/* Latin-1 Supplement and Latin Extended-A (U+00C0..U+017F, lower-cased) to
 * their base letter; '\0' where there is none. */
static const char latin_base[] =
    "aaaaaaaceeeeiiii" "dnooooo\0ouuuuyts"   /* C0..DF (DF: ß → "s", see below) */
    "aaaaaaaceeeeiiii" "dnooooo\0ouuuuyty"   /* E0..FF */
    "aaaaaaccccccccdd" "ddeeeeeeeeeegggg"    /* 100..11F */
    "gggghhhhiiiiiiii" "iiiijjkkklllllll"    /* 120..13F */
    "lllnnnnnnnnnoooo" "oooorrrrrrssssss"    /* 140..15F */
    "ssttttttuuuuuuuu" "uuuuwwyyyzzzzzzs";   /* 160..17F */


static uint32_t utf8_next(const unsigned char *p, size_t n, size_t *i)
{
    unsigned char c = p[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    int len = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || *i + (size_t)len > n) {
        (*i)++;
        return '?';
    }
    uint32_t cp = c & (0x7F >> len);
    for (int k = 1; k < len; k++) {
        if ((p[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return '?';
        }
        cp = (cp << 6) | (p[*i + k] & 0x3F);
    }
    *i += (size_t)len;
    return cp;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Output of a code point never takes more bytes than its input did, so the
 * fold and words views fit in buffers the size of the span. */
static size_t utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static char leet(char c)
{
    switch (c) {
    case '0': return 'o';
    case '1': return 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '7': return 't';
    case '@': return 'a';
    case '$': return 's';
    default: return c;
    }
}

static int is_leet(char c)
{
    return leet(c) != c;
}

static int is_tokch(uint32_t c)
{
    return is_letter(c) || (c >= '0' && c <= '9') || c == '@' || c == '$';
}

struct stats {
    unsigned zw_in_word, mixed_words, leet_words, spaced_runs, fullwidth;
    unsigned cjk;        /* CJK or Hangul code points seen */
    unsigned nesc;       /* bytes that may start an escape (\ % &) */
    int b64run;          /* a run of 16+ base64 bytes may be there */
    int three;           /* a '3' may be in the fold view */
    unsigned seen;       /* A_* classes of the ASCII punctuation kept */
    uint64_t bits;       /* every token's dictionary bits */
    size_t nfold, nwords, ntoks, nsquash;
    size_t nkey;         /* tokens listed in scratch->keytoks: those with concept
                          * bits or phrases starting at them */
};

/* Fold one non-ASCII code point (case, accents, fullwidth, look-alikes,
 * typographic quotes and dashes); *alt gets its homoglyph letter. */
static uint32_t fold_cp(const struct kt_inj_index *ix, uint32_t c, uint8_t *alt,
                        unsigned *fullwidth)
{
    *alt = 0;
    if (c >= 0xFF01 && c <= 0xFF5E) {
        c -= 0xFEE0;
        if (is_letter(c))
            (*fullwidth)++;
    }
    if (c >= 'A' && c <= 'Z') {
        c += 32;
    } else if (c >= 0xC0 && c <= 0x17F) {
        uint32_t lc = c;
        if (c <= 0xDE && c != 0xD7)
            lc = c + 0x20;
        if (c == 0xDF)           /* ß → ss: the caller emits the first s */
            c = 's';
        else if (c == 0x131)     /* dotless i */
            c = 'i';
        else if (latin_base[lc - 0xC0])
            c = (uint32_t)latin_base[lc - 0xC0];
        else
            c = lc;
    } else if (c >= 0x400 && c <= 0x52F) {
        int upper = 0;
        if (c >= 0x410 && c <= 0x42F) {
            c += 0x20;
            upper = 1;
        } else if (c >= 0x400 && c <= 0x40F) {
            c += 0x50;
            upper = 1;
        } else if (c >= 0x460 && c <= 0x52F && !(c & 1)) {
            c += 1;
            upper = 1;
        }
        *alt = (uint8_t)ix->hg[upper][c - 0x370];
    } else if (c >= 0x370 && c <= 0x3FF) {
        int upper = 0;
        if (c >= 0x391 && c <= 0x3A9) {
            c += 0x20;
            upper = 1;
        }
        *alt = (uint8_t)ix->hg[upper][c - 0x370];
    } else if (c == 0x201C || c == 0x201D || c == 0x201E || c == 0xAB ||
               c == 0xBB) {
        c = '"';
    } else if (c == 0x2018 || c == 0x2019 || c == 0x201A) {
        c = '\'';
    } else if (c >= 0x2010 && c <= 0x2015) {
        c = '-';
    }
    return c;
}

/* ---- the scanner ------------------------------------------------------------
 * One pass over the span's bytes builds every view: code points are folded
 * and whitespace runs collapsed to one ' ' (or '\n' when the run has one)
 * as they are read; tokens (letters, digits, @, $) go to the fold view as
 * they are and to the words view as " tok tok "; at a token's end its
 * homoglyphs are mapped when the word mixes scripts, leetspeak is mapped,
 * the dictionary gives its concept bits, and one-letter tokens feed the
 * squash view. ASCII letters and digits take a tight loop of table loads;
 * everything else one code point at a time. The same pass notes what the
 * later checks need (punctuation seen, escapes, base64 runs) so that a
 * benign text skips them. */

struct scan {
    const struct kt_inj_index *ix;
    uint32_t *tcp;           /* code points of the token being read (slow) */
    uint8_t *talt;
    char *fold, *words, *sq;
    struct kt_inj_tok *toks;
    uint32_t *keytoks;
    struct stats *st;
    size_t fo, wo, so, nt;
    unsigned pend;           /* whitespace read but not yet kept: 0, ' ', '\n' */
    int lastlet;             /* the last code point kept is a letter */
    int zw;                  /* a zero-width character followed a letter */
    int in_tok, slow;        /* slow: the token has non-ASCII, tcp[] holds it */
    size_t fstart, wstart, ncp, tn;
    unsigned tfl;            /* F_* of the token's code points */
    size_t run_start, run_len;
    size_t b64start;         /* byte after the last one that ends a base64 run */
};

static inline void tok_begin(struct scan *S)
{
    if (S->pend) {
        S->fold[S->fo++] = (char)S->pend;
        S->pend = 0;
    }
    S->in_tok = 1;
    S->slow = 0;
    S->fstart = S->fo;
    S->wstart = S->wo;
    S->ncp = S->tn = 0;
    S->tfl = 0;
}

static void squash_end(struct scan *S)
{
    if (S->run_len < 4) {
        S->so = S->run_start;
    } else {
        S->sq[S->so++] = ' ';
        S->st->spaced_runs++;
    }
    S->run_len = 0;
}

/* A token with a homoglyph is rewritten with Latin letters when it mixes
 * scripts or is all look-alikes; returns its new letter/leet flags. */
static __attribute__((noinline)) unsigned tok_remap(struct scan *S, unsigned fl)
{
    if (!((fl & F_ALT) && ((fl & F_ALET) || !(fl & F_NOALT))))
        return fl;
    if (fl & F_ALET)
        S->st->mixed_words++;
    S->fo = S->fstart;
    S->wo = S->wstart;
    fl &= ~(F_LET | F_LEET);
    for (size_t k = 0; k < S->tn; k++) {
        uint32_t d = S->talt[k] ? S->talt[k] : S->tcp[k];
        S->fo += utf8_put(S->fold + S->fo, d);
        if (d < 0x80) {
            S->words[S->wo++] = (char)d;
            fl |= is_letter(d) ? F_LET : is_leet((char)d) ? F_LEET : 0;
        } else {
            S->wo += utf8_put(S->words + S->wo, d);
            fl |= F_LET;
        }
    }
    return fl;
}

/* Letters and leetspeak in one word: map the leet in the words view;
 * 1 when a leet character sits between two letters. */
static __attribute__((noinline)) int leet_map(char *words, size_t wstart, size_t wo)
{
    int interior_leet = 0;
    for (size_t k = wstart; k < wo; k++) {
        if (!is_leet(words[k]))
            continue;
        if (k > wstart && k + 1 < wo && is_letter((unsigned char)words[k - 1]) &&
            is_letter((unsigned char)words[k + 1]))
            interior_leet = 1;
        words[k] = leet(words[k]);
    }
    return interior_leet;
}

/* A token is complete in the views (words[wstart..wo), fold from fstart):
 * map its leetspeak, look it up, feed the squash view. */
static inline __attribute__((always_inline)) void
tok_finish(struct scan *S, size_t fstart, size_t wstart, size_t ncp, unsigned fl)
{
    size_t wo = S->wo, tlen = wo - wstart;
    if ((fl & (F_LET | F_LEET)) == (F_LET | F_LEET))
        S->st->leet_words += (unsigned)leet_map(S->words, wstart, wo);
    struct kt_inj_tok *t = &S->toks[S->nt++];
    t->off = (uint32_t)wstart;
    t->foff = (uint32_t)fstart;
    t->len = (uint16_t)(tlen > 0xFFFF ? 0xFFFF : tlen);
    t->quoted = 0;
    t->pad = 0;
    t->bits = dict_lookup(S->ix, S->words + wstart, tlen, &t->ph0, &t->phn);
    S->st->bits |= t->bits;
    if (t->phn || t->bits)
        S->keytoks[S->st->nkey++] = (uint32_t)(S->nt - 1);
    /* squash: runs of one-letter tokens ("i g n o r e", "i.g.n.o.r.e") */
    if (ncp == 1 && (fl & F_LET)) {
        if (S->run_len == 0)
            S->run_start = S->so;
        S->sq[S->so++] = S->words[wstart];
        S->run_len++;
    } else if (S->run_len) {
        squash_end(S);
    }
    S->words[S->wo++] = ' ';
}

/* End of a token read (at least partly) one code point at a time. */
static void tok_end(struct scan *S)
{
    unsigned fl = S->tfl;
    S->in_tok = 0;
    if (S->slow) {
        fl = tok_remap(S, fl);
        S->slow = 0;
    }
    tok_finish(S, S->fstart, S->wstart, S->ncp, fl);
}

/* A token code point read one at a time (non-ASCII, @, $, or after a
 * zero-width character). */
static void tok_add(struct scan *S, uint32_t c, uint8_t alt)
{
    if (!S->in_tok)
        tok_begin(S);
    if (c >= 0x80 && !S->slow) {
        /* keep the token's code points from here on, for homoglyphs; what
         * came before is ASCII and already in the fold view */
        for (size_t k = S->fstart; k < S->fo; k++) {
            S->tcp[S->tn] = (unsigned char)S->fold[k];
            S->talt[S->tn++] = 0;
        }
        S->slow = 1;
    }
    if (S->slow) {
        S->tcp[S->tn] = c;
        S->talt[S->tn++] = alt;
    }
    if (c < 0x80) {
        S->fold[S->fo++] = (char)c;
        S->words[S->wo++] = (char)c;
        S->tfl |= is_letter(c) ? F_LET | F_ALET : is_leet((char)c) ? F_LEET : 0;
    } else {
        S->fo += utf8_put(S->fold + S->fo, c);
        S->wo += utf8_put(S->words + S->wo, c);
        S->tfl |= F_LET | (alt ? F_ALT : F_NOALT);
    }
    S->ncp++;
    S->lastlet = is_letter(c);
}

/* Punctuation and symbols: kept in the fold view only. */
static void other_add(struct scan *S, uint32_t c)
{
    if (S->in_tok)
        tok_end(S);
    if (S->pend) {
        S->fold[S->fo++] = (char)S->pend;
        S->pend = 0;
    }
    if (c < 0x80) {
        S->fold[S->fo++] = (char)c;
        S->st->seen |= S->ix->cls[c];
    } else {
        S->fo += utf8_put(S->fold + S->fo, c);
    }
    S->lastlet = 0;
}

/* A folded code point that is kept (not whitespace, not zero-width). */
static void cp_add(struct scan *S, uint32_t c, uint8_t alt)
{
    if (S->zw && is_letter(c))
        S->st->zw_in_word++;
    if ((c >= 0x3040 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF))
        S->st->cjk++;
    S->zw = 0;
    if (is_tokch(c))
        tok_add(S, c, alt);
    else
        other_add(S, c);
}

/* Whitespace: a run of it is kept as one ' ', or '\n' when it has one. */
static inline __attribute__((always_inline)) void ws_add(struct scan *S, unsigned w)
{
    S->zw = 0;
    if (S->in_tok)
        tok_end(S);
    if (!S->pend || w == '\n')
        S->pend = w;
    S->lastlet = 0;
}

/* The same for a two-byte code point, from the table. */
static void slow_cp2(struct scan *S, uint32_t cp)
{
    unsigned cl = S->ix->cp2[cp - 0x80].cl;
    uint32_t f = S->ix->cp2[cp - 0x80].f;
    if (cl & C2_ZW) {
        if (S->lastlet)
            S->zw = 1;
        return;
    }
    if (cl & (C2_NL | C2_SP)) {
        ws_add(S, cl & C2_NL ? '\n' : ' ');
        return;
    }
    if (cl & C2_SHARP)
        tok_add(S, 's', 0);
    if (S->zw && (cl & C2_LET))
        S->st->zw_in_word++;
    if (cl & C2_CJK)
        S->st->cjk++;
    S->zw = 0;
    if (cl & C2_TOK)
        tok_add(S, f, S->ix->cp2[cp - 0x80].alt);
    else
        other_add(S, f);
}

/* A non-ASCII code point: zero-width, whitespace, or folded and kept. */
/* copy_lower8: copy the run of lower-case ASCII letters at *q to both *f
 * and *w, eight bytes at a time, advancing all three; says whether it
 * copied any. A byte is not such a letter when it has its top bit, is
 * below 'a' (adding 0x1F leaves its top bit clear) or above 'z' (adding
 * 0x05 sets it); a carry only spoils bytes after the first bad one, which
 * are not used. Little-endian only; elsewhere the callers' bytewise loops
 * do the work. */
static inline int copy_lower8(const unsigned char **qp, const unsigned char *e, char **fp, char **wp)
{
    int any = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const unsigned char *q = *qp;
    char *f = *fp, *w = *wp;
    while (e - q >= 8) {
        uint64_t x;
        memcpy(&x, q, 8);
        const uint64_t hi = UINT64_C(0x8080808080808080);
        uint64_t bad = (x | ~(x + UINT64_C(0x1F1F1F1F1F1F1F1F)) |
                        (x + UINT64_C(0x0505050505050505))) & hi;
        memcpy(f, &x, 8);
        memcpy(w, &x, 8);
        size_t k = bad ? (size_t)__builtin_ctzll(bad) >> 3 : 8;
        f += k;
        w += k;
        q += k;
        any |= k != 0;
        if (k < 8)
            break;
    }
    *qp = q;
    *fp = f;
    *wp = w;
#else
    (void)qp, (void)e, (void)fp, (void)wp;
#endif
    return any;
}

static void slow_cp(struct scan *S, uint32_t cp)
{
    if (is_zero_width(cp)) {
        if (S->lastlet)
            S->zw = 1;
        return;
    }
    if (is_newline_cp(cp) || is_space_cp(cp)) {
        ws_add(S, is_newline_cp(cp) ? '\n' : ' ');
        return;
    }
    uint8_t alt;
    uint32_t f = fold_cp(S->ix, cp, &alt, &S->st->fullwidth);
    if (cp == 0xDF)
        tok_add(S, 's', 0);
    cp_add(S, f, alt);
}

static void scan_views(struct kt_injection_scratch *s, const char *text, size_t len,
                       struct stats *st)
{
    const struct kt_inj_index *ix = s->index;
    const unsigned char *p = (const unsigned char *)text;
    struct scan S;
    memset(&S, 0, sizeof S);
    S.ix = ix;
    S.tcp = s->cps;
    S.talt = s->alt;
    S.fold = s->fold;
    S.words = s->words;
    S.sq = s->squash;
    S.toks = s->toks;
    S.keytoks = s->keytoks;
    S.st = st;
    S.words[S.wo++] = ' ';
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        unsigned v = ix->fast[c];
        if (v && !(S.zw | S.slow)) {
            /* ASCII letters and digits: the common case */
            size_t fstart = S.fo, wstart = S.wo;
            if (!S.in_tok) {
                if (S.pend) {
                    S.fold[S.fo++] = (char)S.pend;
                    S.pend = 0;
                }
                fstart = S.fo;
            }
            char *f = S.fold + S.fo, *w = S.words + S.wo;
            const unsigned char *q = p + i, *e = p + len;
            unsigned fl = 0;
            for (;;) {
                if (copy_lower8(&q, e, &f, &w))
                    fl |= F_LET | F_ALET;
                if (q == e || !(v = ix->fast[*q]))
                    break;
                /* upper case, digits: a byte at a time */
                do {
                    *f++ = *w++ = (char)v;
                    fl |= v;
                } while (++q < e && (v = ix->fast[*q]) != 0 && (unsigned)(*q - 'a') >= 26);
                if (q == e || !v)
                    break;
            }
            size_t k = (size_t)(q - (p + i));
            S.fo += k;
            S.wo += k;
            i += k;
            fl &= ~0xFFu;
            /* ended by a separator (or the end): done; else it goes on
             * one code point at a time (non-ASCII, @, $) */
            if (!S.in_tok && (q == e || (*q < 0x80 && *q != '@' && *q != '$'))) {
                tok_finish(&S, fstart, wstart, k, fl);
                continue;
            }
            if (!S.in_tok) {
                S.in_tok = 1;
                S.slow = 0;
                S.fstart = fstart;
                S.wstart = wstart;
                S.ncp = S.tn = 0;
                S.tfl = 0;
            }
            S.ncp += k;
            S.tfl |= fl;
            S.lastlet = f[-1] >= 'a';
            continue;
        }
        size_t i0 = i;
        if (c < 0x80) {
            unsigned a = ix->cls[c];
            i++;
            if (!v && !(a & A_B64)) {
                /* the byte ends a base64 run: was it long enough? */
                if (i0 - S.b64start >= 16)
                    st->b64run = 1;
                S.b64start = i;
            }
            if (a & (A_WS | A_NL)) {
                ws_add(&S, a & A_NL ? '\n' : ' ');
                continue;
            }
            if (a & A_ESC)
                st->nesc++;
            if (c >= 'A' && c <= 'Z')
                c += 32;
            cp_add(&S, c, 0);
            continue;
        }
        uint32_t cp = utf8_next(p, len, &i);
        if (i0 - S.b64start >= 16)
            st->b64run = 1;
        S.b64start = i;
        if (cp >= 0x80 && cp < 0x800)
            slow_cp2(&S, cp);
        else
            slow_cp(&S, cp);
    }
    if (len - S.b64start >= 16)
        st->b64run = 1;
    if (S.in_tok)
        tok_end(&S);
    if (S.pend)
        S.fold[S.fo++] = (char)S.pend;
    if (S.run_len)
        squash_end(&S);
    S.fold[S.fo] = '\0';
    S.words[S.wo] = '\0';
    S.sq[S.so] = '\0';
    st->nfold = S.fo;
    st->nwords = S.wo;
    st->ntoks = S.nt;
    st->nsquash = S.so;
}

/* The same pass for a span whose words are ASCII (the usual chat text),
 * with its state in locals: no zero-width characters, homoglyphs or
 * fullwidth letters can occur, so a token is a run of [a-z0-9@$] and is
 * finished in place. Returns 0, leaving *st alone, at the first non-ASCII
 * letter or zero-width character. */
static int scan_ascii(struct kt_injection_scratch *s, const char *text, size_t len,
                      struct stats *st)
{
    const struct kt_inj_index *ix = s->index;
    const unsigned char *p = (const unsigned char *)text, *q = p, *e = p + len;
    char *fold = s->fold, *words = s->words, *sq = s->squash;
    struct kt_inj_tok *toks = s->toks;
    uint32_t *keytoks = s->keytoks;
    size_t fo = 0, wo = 0, so = 0, nt = 0, run_start = 0, run_len = 0, nkey = 0;
    unsigned pend = 0, seen = 0, nesc = 0, leet_words = 0, spaced_runs = 0;
    int b64run = 0;
    unsigned allfl = 0;
    uint64_t allbits = 0;
    words[wo++] = ' ';
    while (q < e) {
        unsigned c = *q;
        unsigned v = ix->atok[c];
        if (!v) {
            unsigned a = ix->cls[c];
            if (c >= 0x80) {
                /* typographic punctuation and spaces (’ “ ” — NBSP) keep to
                 * this pass: outside words they change nothing but the fold
                 * view; a letter (é, я, 中, an emoji) or a zero-width
                 * character needs the general pass */
                size_t i = (size_t)(q - p);
                uint32_t cp = utf8_next(p, len, &i);
                if (is_zero_width(cp))
                    return 0;
                q = p + i;
                if (is_newline_cp(cp) || is_space_cp(cp)) {
                    if (!pend || is_newline_cp(cp))
                        pend = is_newline_cp(cp) ? '\n' : ' ';
                    continue;
                }
                unsigned fw = 0;
                uint8_t alt;
                uint32_t f = fold_cp(ix, cp, &alt, &fw);
                if (cp == 0xDF || is_tokch(f))
                    return 0;
                if (pend) {
                    fold[fo++] = (char)pend;
                    pend = 0;
                }
                if (f < 0x80) {
                    fold[fo++] = (char)f;
                    seen |= ix->cls[f] & ~(unsigned)A_B64;   /* not one in the raw text */
                } else {
                    fo += utf8_put(fold + fo, f);
                }
                continue;
            }
            q++;
            if (a & (A_WS | A_NL)) {
                if (!pend || (a & A_NL))
                    pend = a & A_NL ? '\n' : ' ';
                continue;
            }
            if (pend) {
                fold[fo++] = (char)pend;
                pend = 0;
            }
            fold[fo++] = (char)c;
            seen |= a;
            nesc += (a & A_ESC) != 0;
            continue;
        }
        if (pend) {
            fold[fo++] = (char)pend;
            pend = 0;
        }
        /* a token, and the next one as long as a single space separates
         * them (the usual case) */
        for (;;) {
            const unsigned char *t0 = q;
            char *f = fold + fo, *w = words + wo;
            unsigned fl = 0;
            for (;;) {
                if (copy_lower8(&q, e, &f, &w))
                    fl |= F_LET | F_ALET;
                if (q == e || !(v = ix->atok[*q]))
                    break;
                /* upper case, digits, @ $: a byte at a time */
                do {
                    *f++ = *w++ = (char)v;
                    fl |= v;
                } while (++q < e && (v = ix->atok[*q]) != 0 && (unsigned)(*q - 'a') >= 26);
                if (q == e || !v)
                    break;
            }
            size_t k = (size_t)(q - t0), fstart = fo, wstart = wo;
            fo += k;
            wo += k;
            b64run |= k >= 16;
            allfl |= fl;
            if ((fl & (F_LET | F_LEET)) == (F_LET | F_LEET))
                leet_words += (unsigned)leet_map(words, wstart, wo);
            struct kt_inj_tok *t = &toks[nt++];
            t->off = (uint32_t)wstart;
            t->foff = (uint32_t)fstart;
            t->len = (uint16_t)(k > 0xFFFF ? 0xFFFF : k);
            t->quoted = 0;
            t->pad = 0;
            t->bits = dict_lookup(ix, words + wstart, k, &t->ph0, &t->phn);
            allbits |= t->bits;
            if (t->phn || t->bits)
                keytoks[nkey++] = (uint32_t)(nt - 1);
            /* squash: runs of one-letter tokens ("i g n o r e", "i.g.n.o.r.e") */
            if (k == 1 && (fl & F_LET)) {
                if (run_len == 0)
                    run_start = so;
                sq[so++] = words[wstart];
                run_len++;
            } else if (run_len) {
                if (run_len < 4) {
                    so = run_start;
                } else {
                    sq[so++] = ' ';
                    spaced_runs++;
                }
                run_len = 0;
            }
            words[wo++] = ' ';
            if (e - q < 2 || q[0] != ' ' || !ix->atok[q[1]])
                break;
            fold[fo++] = ' ';
            q++;
        }
    }
    if (pend)
        fold[fo++] = (char)pend;
    if (run_len) {
        if (run_len < 4) {
            so = run_start;
        } else {
            sq[so++] = ' ';
            spaced_runs++;
        }
    }
    fold[fo] = '\0';
    words[wo] = '\0';
    sq[so] = '\0';
    st->leet_words += leet_words;
    st->spaced_runs += spaced_runs;
    st->nesc += nesc;
    /* a base64 run of 16 is in one token or goes through + - / _ */
    st->b64run |= b64run || (seen & A_B64);
    st->seen |= seen;
    st->three = (allfl & F_THREE) != 0;
    st->bits |= allbits;
    st->nfold = fo;
    st->nwords = wo;
    st->ntoks = nt;
    st->nsquash = so;
    st->nkey = nkey;
    return 1;
}

/* Tokens inside a closed "..." on one line (at most 400 code points): in a
 * text about attacks they are quoted, not meant. Needed only then, so it
 * runs after the scan, on the fold view (one code point per kept one). */
static void mark_quoted(const char *fold, size_t n, struct kt_inj_tok *toks, size_t nt)
{
    size_t ti = 0, ci = 0, qend = 0;
    for (size_t b = 0; b < n; b++) {
        unsigned char c = (unsigned char)fold[b];
        if ((c & 0xC0) == 0x80)
            continue;
        while (ti < nt && toks[ti].foff == b)
            toks[ti++].quoted = qend != 0;
        if (c == '"') {
            if (qend && ci == qend) {
                qend = 0;
            } else if (!qend) {
                size_t k = ci + 1;
                for (size_t e = b + 1; e < n && k < ci + 400; e++) {
                    unsigned char d = (unsigned char)fold[e];
                    if ((d & 0xC0) == 0x80)
                        continue;
                    if (d == '\n')
                        break;
                    if (d == '"') {
                        qend = k;
                        break;
                    }
                    k++;
                }
            }
        } else if (c == '\n') {
            qend = 0;
        }
        ci++;
    }
}

/* ---- rules -------------------------------------------------------------- */

static int window_has(const struct kt_inj_tok *t, size_t nt, size_t i,
                      uint64_t want, unsigned fwd, unsigned back)
{
    size_t lo = i > back ? i - back : 0;
    size_t hi = i + fwd < nt ? i + fwd : nt - 1;
    for (size_t j = lo; j <= hi; j++)
        if (j != i && (t[j].bits & want))
            return 1;
    return 0;
}

/* req[k..] in order, each within `gap` tokens after position pos. */
static int chain_has(const struct kt_inj_tok *t, size_t nt, size_t pos,
                     const uint64_t *req, int k, unsigned gap, unsigned chain)
{
    if (k == 3 || !req[k])
        return 1;
    for (size_t j = pos + 1; j < nt && j <= pos + gap; j++)
        if ((t[j].bits & req[k]) && chain_has(t, nt, j, req, k + 1, chain, chain))
            return 1;
    return 0;
}

static void run_tok_rules(const struct kt_injection_scratch *s, const struct stats *st,
                          uint64_t added, int meta, struct hits *h)
{
    const struct kt_inj_index *ix = s->index;
    const struct kt_inj_tok *t = s->toks;
    size_t nt = st->ntoks;
    uint64_t allbits = st->bits | added;
    /* the tokens with concept bits are listed, unless an alias gave bits
     * to one that had none */
    size_t n = added ? nt : st->nkey;
    for (size_t ii = 0; ii < n; ii++) {
        size_t i = added ? ii : s->keytoks[ii];
        uint64_t b = t[i].bits & ix->anchors;
        if (!b)
            continue;
        /* only the rules anchored on one of the token's concepts */
        uint64_t rm = 0;
        for (; b; b &= b - 1)
            rm |= ix->rules_of[__builtin_ctzll(b)];
        for (; rm; rm &= rm - 1) {
            size_t r = (size_t)__builtin_ctzll(rm);
            const struct tok_rule *R = &tok_rules[r];
            /* a requirement no token of the text has cannot be met */
            if ((R->req[0] && !(R->req[0] & allbits)) || (R->req[1] && !(R->req[1] & allbits)) ||
                (R->req[2] && !(R->req[2] & allbits)))
                continue;
            int ok = !(R->veto && window_has(t, nt, i, R->veto, R->vfwd ? R->vfwd : 2,
                                             R->vback));
            if (ok && R->chain)
                ok = chain_has(t, nt, i, R->req, 0, R->fwd, R->chain);
            else
                for (int k = 0; k < 3 && R->req[k] && ok; k++)
                    ok = window_has(t, nt, i, R->req[k], R->fwd, R->back);
            if (!ok)
                continue;
            /* in a text about attacks, quoted ones are mentioned, not meant */
            double w = R->weight / 100.0 * (meta && t[i].quoted ? 0.5 : 1.0);
            hit(h, (int)(S_TOK + r), R->sig, w);
        }
    }
}

/* Multi-word phrases, found from their first token: aliases add concept
 * bits to their last word (before the rules run), the others are hits.
 * Returns the bits the aliases added. */
static uint64_t run_word_phrases(struct kt_injection_scratch *s, const struct stats *st,
                                 int meta, struct hits *h)
{
    const struct kt_inj_index *ix = s->index;
    size_t nwords = st->nwords, nt = st->ntoks;
    uint64_t added = 0;
    for (size_t pi = 0; pi < st->nkey; pi++) {
        size_t i = s->keytoks[pi];
        const struct kt_inj_tok *t = &s->toks[i];
        for (size_t k = 0; k < t->phn; k++) {
            size_t id = ix->ph[t->ph0 + k];
            size_t pl = ix->phlen[id], at = t->off - 1;
            if (at + pl > nwords || ld_fast(s->words + at, pl) != ix->ph8[id] ||
                (pl > 8 && memcmp(s->words + at + 8, phrase_text(id) + 8, pl - 8) != 0))
                continue;
            if (id < NELEM(word_aliases)) {
                const char *ph = phrase_text(id);
                size_t nw = 0;
                for (size_t c = 1; c + 1 < pl; c++)
                    nw += ph[c] == ' ';
                if (i + nw < nt) {
                    s->toks[i + nw].bits |= word_aliases[id].bits;
                    added |= word_aliases[id].bits;
                }
            } else {
                size_t pk = id - NELEM(word_aliases);
                /* in a text about attacks, quoted ones are mentioned, not meant */
                double w = word_phrases[pk].weight / 100.0 *
                           (meta && t->quoted ? 0.5 : 1.0);
                hit(h, (int)(S_WORD + pk), word_phrases[pk].sig, w);
            }
        }
    }
    return added;
}

static void run_phrases(const char *hay, size_t n, const struct phrase *ph,
                        size_t nkey, int slot0, struct hits *h)
{
    for (size_t k = 0; k < nkey; k++)
        if (memmem(hay, n, ph[k].s, strlen(ph[k].s)))
            hit(h, slot0 + (int)k, ph[k].sig, ph[k].weight / 100.0);
}

/* Markup literals: for each first byte the text has, the phrases starting
 * with it are compared where it occurs. */
static void run_fold_phrases(const struct kt_inj_index *ix, const char *f, size_t n,
                             unsigned seen, struct hits *h)
{
    const char *end = f + n;
    if (!ix->mark_any && !(seen & ix->ffbits))
        return;
    for (size_t j = 0; j < ix->nff; j++) {
        unsigned char c = ix->ff[j];
        if (!ix->mark_any && !(seen & ix->cls[c]))
            continue;
        for (const char *p = f; (p = memchr(p, c, (size_t)(end - p))); p++) {
            for (size_t i = 0; i < ix->ffn[j]; i++) {
                size_t k = ix->ffk[j][i], pl = ix->fplen[k];
                if (pl <= (size_t)(end - p) && memcmp(p, fold_phrases[k].s, pl) == 0)
                    hit(h, S_FOLD + (int)k, fold_phrases[k].sig,
                        fold_phrases[k].weight / 100.0);
            }
        }
    }
}

/* Chat-template special tokens: <|im_start|>, <|endoftext|>, <|eot_id|>. */
static void run_special_tokens(const char *f, size_t n, struct hits *h)
{
    for (const char *p = f; (p = memmem(p, (size_t)(f + n - p), "<|", 2)); p += 2) {
        const char *q = p + 2;
        while (q < f + n && q - p < 30 && ((*q >= 'a' && *q <= 'z') || *q == '_'))
            q++;
        if (q > p + 2 && q + 1 < f + n && q[0] == '|' && q[1] == '>') {
            hit(h, S_IMTOKEN, DLM, 0.8);
            return;
        }
    }
}

/* "### Instruction:", "###SYSTEM OVERRIDE###", "### Response:" */
static void run_hash_headers(const char *f, size_t n, struct hits *h)
{
    static const struct { const char *w; int any_follow; } hdr[] = {
        {"system", 1}, {"new instruction", 1}, {"instruction", 0},
        {"response", 0}, {"input", 0}, {"human", 0}, {"assistant", 0}, {"user", 0},
    };
    for (const char *p = f; (p = memmem(p, (size_t)(f + n - p), "###", 3)); p += 3) {
        const char *q = p + 3;
        while (q < f + n && (*q == ' ' || *q == '#'))
            q++;
        for (size_t k = 0; k < NELEM(hdr); k++) {
            size_t l = strlen(hdr[k].w);
            if ((size_t)(f + n - q) < l || memcmp(q, hdr[k].w, l) != 0)
                continue;
            const char *e = q + l;
            if (e < f + n && *e == 's')
                e++;
            while (e < f + n && *e == ' ')
                e++;
            if (hdr[k].any_follow || (e < f + n && (*e == ':' || *e == '#')))
                hit(h, S_HASHDR, DLM, 0.6);
        }
    }
}

/* "System:" / "Assistant:" at the start of a line inside user text. */
static void run_role_tokens(const struct kt_inj_index *ix, const char *f, size_t n,
                            struct hits *h)
{
    const char *p = f, *end = f + n;
    while (p < end) {
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '#' || *q == '*' || *q == '>' ||
                           *q == '[' || *q == '-'))
            q++;
        for (size_t k = 0; q < end && ix->role_first[(unsigned char)*q] &&
                           k < NELEM(role_words); k++) {
            size_t l = ix->rolelen[k];
            if (role_words[k].s[0] == *q && (size_t)(end - q) > l &&
                memcmp(q, role_words[k].s, l) == 0) {
                const char *e = q + l;
                if (*e == ']')
                    e++;
                while (e < end && *e == ' ')
                    e++;
                if (e < end && *e == ':')
                    hit(h, S_ROLE + (int)k, ROL, role_words[k].weight / 100.0);
                /* "Assistant, new instructions..." inside a document */
                else if (e < end && *e == ',' && role_words[k].weight >= 40)
                    hit(h, S_ADDRESS, IND, 0.3);
            }
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        p = nl + 1;
    }
}

/* Chinese and Japanese: no spaces, so pairs of substrings near each other. */
static void run_cjk(const char *f, size_t n, struct hits *h)
{
    static const char *const ign[] = {"忽略", "无视", "無視", "忘记", "忘記", "忘れ", "무시"};
    static const char *const ins[] = {"指令", "指示", "说明", "規則", "规则", "命令", "지시"};
    static const char *const sys[] = {"系统提示", "系統提示", "システムプロンプト", "시스템 프롬프트"};
    for (size_t a = 0; a < NELEM(ign); a++) {
        const char *p = memmem(f, n, ign[a], strlen(ign[a]));
        if (!p)
            continue;
        size_t lo = (size_t)(p - f) > 60 ? (size_t)(p - f) - 60 : 0;
        size_t hi = (size_t)(p - f) + 60 < n ? (size_t)(p - f) + 60 : n;
        for (size_t b = 0; b < NELEM(ins); b++)
            if (memmem(f + lo, hi - lo, ins[b], strlen(ins[b])))
                hit(h, S_CJK_OVR, OVR, 0.85);
    }
    for (size_t a = 0; a < NELEM(sys); a++)
        if (memmem(f, n, sys[a], strlen(sys[a])))
            hit(h, S_CJK_EXT, EXT, 0.5);
}

static void run_obfuscation(const struct stats *st, struct hits *h)
{
    if (st->zw_in_word)
        hit(h, S_OB_ZW, OBF, st->zw_in_word > 2 ? 0.45 : 0.35);
    if (st->mixed_words)
        hit(h, S_OB_MIX, OBF, st->mixed_words > 1 ? 0.5 : 0.4);
    if (st->leet_words >= 2)
        hit(h, S_OB_LEET, OBF, st->leet_words > 3 ? 0.35 : 0.25);
    if (st->spaced_runs)
        hit(h, S_OB_SPACED, OBF, 0.25);
    if (st->fullwidth >= 4)
        hit(h, S_OB_FW, OBF, 0.15);
}

/* Score one span's text (no decoding of payloads). */
static void scan_text(struct kt_injection_scratch *s, const char *text, size_t len,
                      struct hits *h, struct stats *st)
{
    const struct kt_inj_index *ix = s->index;
    if (!scan_ascii(s, text, len, st)) {
        scan_views(s, text, len, st);
        st->three = 1;
    }
    int meta = (st->bits & C(C_META)) != 0;
    if (meta && (st->seen & A_DQ))
        mark_quoted(s->fold, st->nfold, s->toks, st->ntoks);
    uint64_t added = run_word_phrases(s, st, meta, h);
    run_tok_rules(s, st, added, meta, h);
    /* markup needs punctuation a plain sentence seldom has */
    run_fold_phrases(ix, s->fold, st->nfold, st->seen, h);
    if (st->seen & A_LT)
        run_special_tokens(s->fold, st->nfold, h);
    if (st->seen & A_HASH)
        run_hash_headers(s->fold, st->nfold, h);
    if (st->nsquash)
        run_phrases(s->squash, st->nsquash, squash_phrases, NELEM(squash_phrases),
                    S_SQUASH, h);
    run_role_tokens(ix, s->fold, st->nfold, h);
    if (st->cjk)
        run_cjk(s->fold, st->nfold, h);
    run_obfuscation(st, h);
}

/* "rot13", "rot-13", "rot 13" in the fold view: found from the rarer '3'. */
static int rot13_hint(const char *f, size_t n)
{
    for (const char *p = f; (p = memchr(p, '3', (size_t)(f + n - p))); p++) {
        size_t o = (size_t)(p - f);      /* "13" at o - 1 */
        if (o < 1 || p[-1] != '1')
            continue;
        o--;
        if (o >= 3 && memcmp(f + o - 3, "rot", 3) == 0)
            return 1;
        if (o >= 4 && (f[o - 1] == '-' || f[o - 1] == ' ') && memcmp(f + o - 4, "rot", 3) == 0)
            return 1;
    }
    return 0;
}

/* ---- encoded payloads ---------------------------------------------------- */

#define DEC_RUN_MAX 8192          /* input bytes of one candidate decoded */
#define DEC_BUDGET (64 * 1024)    /* decoded bytes per span, all candidates */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decoded bytes look like text worth rescanning: mostly printable, with
 * spaces (instructions are sentences; keys and hashes are not). */
static int looks_textual(const unsigned char *d, size_t n)
{
    if (n < 8)
        return 0;
    size_t good = 0, spaces = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == ' ')
            spaces++;
        if ((d[i] >= 0x20 && d[i] < 0x7F) || d[i] == '\n' || d[i] == '\t' ||
            d[i] == '\r' || d[i] >= 0x80)
            good++;
    }
    return good * 10 >= n * 9 && spaces >= 1;
}

static double strongest_payload_hit(const struct hits *h)
{
    double best = 0;
    for (int k = next_fired(h, 0); k < S_COUNT; k = next_fired(h, k + 1))
        if ((h->sig[k] & (OVR | JB | EXT | DLM)) && h->w[k] > best)
            best = h->w[k];
    return best;
}

/* Rescan decoded bytes in s->dec; merge their hits and mark the payload. */
static void rescan_decoded(struct kt_injection_scratch *s, size_t n, struct hits *h)
{
    struct hits inner;
    struct stats st;
    hits_clear(&inner);
    memset(&st, 0, sizeof st);
    scan_text(s, s->dec, n, &inner, &st);
    double best = strongest_payload_hit(&inner);
    if (best < 0.3)
        return;
    for (int k = next_fired(&inner, 0); k < S_OB_ZW; k = next_fired(&inner, k + 1))
        hit(h, k, inner.sig[k], inner.w[k]);
    hit(h, S_ENCODED, ENC, best >= 0.6 ? 0.6 : 0.4);
}

static size_t decode_b64(const char *p, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)p[i]);
        if (v < 0)
            break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

static size_t decode_hex(const char *p, size_t n, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        out[o++] = (unsigned char)(hexval((unsigned char)p[i]) << 4 |
                                   hexval((unsigned char)p[i + 1]));
    return o;
}

/* base64 and hex runs in the raw span. */
static int scan_runs(struct kt_injection_scratch *s, const char *text, size_t len,
                     struct hits *h)
{
    size_t budget = DEC_BUDGET;
    size_t i = 0;
    while (i < len && budget > 0) {
        if (b64val((unsigned char)text[i]) < 0) {
            i++;
            continue;
        }
        size_t j = i;
        int all_hex = 1, lower = 0, upper = 0, digit = 0;
        while (j < len && b64val((unsigned char)text[j]) >= 0) {
            unsigned char c = (unsigned char)text[j];
            if (hexval(c) < 0)
                all_hex = 0;
            lower |= c >= 'a' && c <= 'z';
            upper |= c >= 'A' && c <= 'Z';
            digit |= c >= '0' && c <= '9';
            j++;
        }
        size_t rl = j - i;
        const char *r = text + i;
        if (rl >= 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'X')) {
            r += 2;
            rl -= 2;
        }
        if (rl > DEC_RUN_MAX)
            rl = DEC_RUN_MAX;
        size_t dn = 0;
        if (all_hex && rl >= 16 && digit) {
            dn = decode_hex(r, rl & ~(size_t)1, (unsigned char *)s->dec);
        } else if (rl >= 16 && lower + upper + digit >= 2) {
            dn = decode_b64(r, rl, (unsigned char *)s->dec);
        }
        if (dn && looks_textual((unsigned char *)s->dec, dn)) {
            if (dn > budget)
                dn = budget;
            budget -= dn;
            rescan_decoded(s, dn, h);
        }
        i = j;
    }
    return 0;
}

/* \u0069, \x69, %69, &#105; escapes: unescape the whole span if it has a few. */
static size_t unescape(const char *t, size_t n, char *out, size_t *count)
{
    size_t o = 0, cnt = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\\' && i + 5 < n + 0 && (t[i + 1] == 'u' || t[i + 1] == 'U') &&
            hexval((unsigned char)t[i + 2]) >= 0 && hexval((unsigned char)t[i + 3]) >= 0 &&
            hexval((unsigned char)t[i + 4]) >= 0 && hexval((unsigned char)t[i + 5]) >= 0) {
            uint32_t cp = 0;
            for (int k = 2; k < 6; k++)
                cp = cp << 4 | (uint32_t)hexval((unsigned char)t[i + k]);
            size_t l = utf8_len(cp);
            if (l <= 6) {
                o += utf8_put(out + o, cp);
                i += 6;
                cnt++;
                continue;
            }
        }
        if ((c == '\\' && i + 3 < n + 0 && t[i + 1] == 'x') || c == '%') {
            size_t h0 = c == '%' ? i + 1 : i + 2;
            if (h0 + 1 < n && hexval((unsigned char)t[h0]) >= 0 &&
                hexval((unsigned char)t[h0 + 1]) >= 0) {
                out[o++] = (char)(hexval((unsigned char)t[h0]) << 4 |
                                  hexval((unsigned char)t[h0 + 1]));
                i = h0 + 2;
                cnt++;
                continue;
            }
        }
        if (c == '&' && i + 3 < n && t[i + 1] == '#') {
            size_t k = i + 2;
            int hex = 0;
            uint32_t cp = 0;
            if (t[k] == 'x' || t[k] == 'X') {
                hex = 1;
                k++;
            }
            size_t d0 = k;
            while (k < n && k - d0 < 6 &&
                   (hex ? hexval((unsigned char)t[k]) >= 0 : (t[k] >= '0' && t[k] <= '9'))) {
                cp = cp * (hex ? 16 : 10) +
                     (uint32_t)(hex ? hexval((unsigned char)t[k]) : t[k] - '0');
                k++;
            }
            if (k > d0 && k < n && t[k] == ';' && cp > 0 && cp < 0x110000 &&
                utf8_len(cp) <= k + 1 - i) {
                o += utf8_put(out + o, cp);
                i = k + 1;
                cnt++;
                continue;
            }
        }
        out[o++] = (char)c;
        i++;
    }
    *count = cnt;
    return o;
}

static void rot13(const char *t, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c >= 'a' && c <= 'z')
            c = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            c = (char)('A' + (c - 'A' + 13) % 26);
        out[i] = c;
    }
}

static int scan_span(struct kt_injection_scratch *s, const char *text, size_t len,
                     struct hits *h)
{
    if (scratch_reserve(s, len) ||
        grow((void **)&s->dec, &s->dec_cap, len + DEC_RUN_MAX + 8, 1))
        return KT_ENOMEM;
    struct stats st;
    memset(&st, 0, sizeof st);
    scan_text(s, text, len, h, &st);
    int rot = st.three && rot13_hint(s->fold, st.nfold);
    /* decoding needs a 16-byte base64 run or three escape characters */
    if (st.b64run)
        scan_runs(s, text, len, h);
    if (st.nesc >= 3) {
        size_t cnt = 0;
        size_t dn = unescape(text, len, s->dec, &cnt);
        if (cnt >= 3)
            rescan_decoded(s, dn, h);
    }
    if (rot) {
        rot13(text, len, s->dec);
        rescan_decoded(s, len, h);
    }
    return 0;
}

/* ---- public --------------------------------------------------------------- */

int kt_injection_score(const char *text, size_t len,
                       struct kt_injection_scratch *s,
                       struct kt_injection_result *out)
{
    if (!s || !out || (!text && len) || !s->index)
        return KT_EINVAL;
    struct hits h;
    hits_clear(&h);
    size_t max = s->max_scan ? s->max_scan : KT_INJECTION_DEFAULT_MAX_SCAN;
    if (max < 64)
        max = 64;
    int rc;
    if (len <= max) {
        rc = scan_span(s, text, len, &h);
        out->scanned = len;
    } else {
        /* head and tail: where instructions to a model usually sit */
        size_t half = max / 2;
        rc = scan_span(s, text, half, &h);
        size_t t0 = len - half;
        while (t0 < len && ((unsigned char)text[t0] & 0xC0) == 0x80)
            t0++;
        if (!rc)
            rc = scan_span(s, text + t0, len - t0, &h);
        out->scanned = half + (len - t0);
    }
    if (rc)
        return rc;
    /* Within a family hits are correlated (one phrase often fires several
     * rules), so only its strongest counts fully and the others at half
     * weight; families combine by plain noisy-OR. Families are the bits of
     * signal_names in order; slots are walked in order within each. */
    if (next_fired(&h, 0) == S_COUNT) {
        /* nothing fired: the usual benign text */
        out->score = 0;
        out->signals = 0;
        out->top_signal = "none";
        return 0;
    }
    double fmax[NELEM(signal_names)] = {0}, fkeep[NELEM(signal_names)];
    int seen_max[NELEM(signal_names)] = {0};
    for (int k = next_fired(&h, 0); k < S_COUNT; k = next_fired(&h, k + 1))
        for (size_t f = 0; f < NELEM(signal_names); f++)
            if (h.sig[k] == signal_names[f].bit && h.w[k] > fmax[f])
                fmax[f] = h.w[k];
    for (size_t f = 0; f < NELEM(signal_names); f++)
        fkeep[f] = 1.0;
    for (int k = next_fired(&h, 0); k < S_COUNT; k = next_fired(&h, k + 1)) {
        for (size_t f = 0; f < NELEM(signal_names); f++) {
            if (h.sig[k] != signal_names[f].bit)
                continue;
            if (!seen_max[f] && h.w[k] == fmax[f]) {
                seen_max[f] = 1;
                fkeep[f] *= 1.0 - fmax[f];
            } else {
                fkeep[f] *= 1.0 - h.w[k] / 2;
            }
        }
    }
    double keep = 1.0, best = 0;
    unsigned sigs = 0, top = 0;
    for (size_t f = 0; f < NELEM(signal_names); f++) {
        if (fmax[f] <= 0)
            continue;
        keep *= fkeep[f];
        sigs |= signal_names[f].bit;
        if (fmax[f] > best) {
            best = fmax[f];
            top = signal_names[f].bit;
        }
    }
    out->score = 1.0 - keep;
    if (out->score < 0)
        out->score = 0;
    if (out->score > 1)
        out->score = 1;
    out->signals = sigs;
    out->top_signal = top ? kt_injection_signal_name(top) : "none";
    return 0;
}

int kt_injection_flagged(const struct kt_injection_result *r, double threshold)
{
    return r && r->score >= threshold - 1e-9;   /* 0.7 must not read as 0.6999 */
}

const char *kt_injection_signal_name(unsigned bit)
{
    for (size_t i = 0; i < NELEM(signal_names); i++)
        if (signal_names[i].bit == bit)
            return signal_names[i].name;
    return "unknown";
}

const char *kt_injection_signals_format(unsigned signals, char *out, size_t outlen)
{
    size_t o = 0;
    if (!out || outlen == 0)
        return out;
    out[0] = '\0';
    for (size_t i = 0; i < NELEM(signal_names); i++) {
        if (!(signals & signal_names[i].bit))
            continue;
        size_t l = strlen(signal_names[i].name);
        if (o + l + 2 > outlen)
            break;
        if (o)
            out[o++] = ',';
        memcpy(out + o, signal_names[i].name, l);
        o += l;
        out[o] = '\0';
    }
    return out;
}
