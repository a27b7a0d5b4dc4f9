//! Sample records: danmu of themed, Zipf-skewed live rooms and news posts of several sources,
//! as realistic as a few hundred phrases make them, plus malformed records. Pure and
//! deterministic: a seeded [`SmallRng`], no I/O.
//!
//! With a *vocabulary* of N words, each record also carries one or two made-up words drawn
//! Zipf-like from N distinct ones, so that the number of distinct terms grows with the run, as
//! in real traffic with its long tail of names and neologisms.

use std::sync::LazyLock;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

const DANMU_MIN_CHARS: usize = 5;
const DANMU_MAX_CHARS: usize = 30;
const POST_MIN_CHARS: usize = 100;
const POST_MAX_CHARS: usize = 300;

// Phrase lists: '|'-separated so that they stay compact.
const MEMES: &str = "666|2333|哈哈哈哈|awsl|yyds|前方高能|主播太强了|这波操作可以|好家伙|来了来了|打卡|\
    老板大气|爷青回|破防了|太可爱了|绝绝子|笑死我了|离谱|泪目|下次一定|妙啊|针不戳|蚌埠住了|芜湖起飞|\
    有内味了|高能预警|空降成功|前排|主播晚上好|刚来|这是什么操作|真的假的|上头了|绷不住了|救命|好耶|\
    冲冲冲|稳住别浪|关注了|三连了|已投币|弹幕护体|是我的错觉吗|太真实了|学到了|牛啊|nb|xswl|确实|\
    有一说一|合理|就这|草|名场面|DNA动了|我悟了|鸡皮疙瘩起来了|不愧是你|再来一遍";
const EMOJI: &str = "😂|👍|🔥|❤️|🐶|😭|🤣|👏|🎉|💪|🙏|😍|🌹";
const FULL_WIDTH: &str = "ＡＢＣ|！！！|ｙｙｄｓ|６６６|ＮＢ|？？？|ＧＧ|ｏｒｚ";
const THEME_SUFFIXES: &str = "|太强了|yyds|绝了|！！|来了|666|好评|？|冲|啊啊啊|有点东西";
const DANMU_MENTIONS: &str = "@主播|@房管|@小助手|@主播大大";
/// One theme a line, `theme=words`: the theme name doubles as the Weibo-style hashtag.
const THEMES: &str = "\
    王者荣耀=五杀|打野|中路|法师|团战|上分|巅峰赛|李白|貂蝉|韩信|推塔|国服\n\
    原神=抽卡|保底|歪了|原石|雷神|钟离|深渊|圣遗物|须弥|派蒙\n\
    英雄联盟=亚索|补刀|大龙|团灭|中单|峡谷|上单|辅助|传送|五杀\n\
    我的世界=红石|苦力怕|钻石|末影龙|建筑|生存模式|村民|下界\n\
    和平精英=吃鸡|空投|决赛圈|毒圈|三级头|狙击枪|跳伞|落地成盒\n\
    美食=好香|火锅|烧烤|小龙虾|麻辣烫|螺蛳粉|探店|饿了|深夜放毒|红烧肉\n\
    户外=徒步|露营|钓鱼|爬山|日出|风景|骑行|荒野求生\n\
    音乐=前奏|单曲循环|吉他|钢琴|耳朵怀孕|好听|副歌|编曲\n\
    唱歌=高音|破音|点歌|天籁|翻唱|live|跑调|好听\n\
    舞蹈=卡点|宅舞|街舞|舞担|爵士|动作干净|再跳一遍\n\
    科技=芯片|人工智能|大模型|机器人|黑科技|发布会|量子|算力\n\
    数码=开箱|手机|测评|续航|折叠屏|显卡|性价比|拍照\n\
    足球=进球|点球|越位|梅西|C罗|国足|世界杯|任意球\n\
    篮球=三分|扣篮|詹姆斯|绝杀|盖帽|NBA|CBA|库里\n\
    萌宠=猫猫|狗狗|猫主子|撸猫|柯基|布偶猫|铲屎官\n\
    学习=自习|考研|番茄钟|背单词|刷题|上岸";
/// One topic a line, `hashtag=sentence fragments`.
const TOPICS: &str = "\
    人工智能=新一代大模型在发布会上正式亮相，推理速度据说提升了三倍|国产芯片又有新进展，7nm 工艺\
    的良率终于上来了|很多公司都在招 AI 工程师，offer 开得一个比一个高|开源社区这周最火的项目是一个\
    用 Rust 写的数据库|机器人在工厂里已经可以独立完成装配，效率比人工高不少|算力紧张的问题短期内很难\
    缓解，GPU 依旧一卡难求|有人实测了新款笔记本的续航，轻度办公能撑十二个小时\n\
    经济观察=央行宣布下调存款准备金率，释放长期资金约一万亿元|本月 CPI 同比上涨百分之零点三，整体\
    物价保持平稳|新能源汽车的出口量再创新高，海外市场增长明显|不少城市出台了购房新政，首付比例进一步\
    降低|跨境电商成了今年外贸的一大亮点|年轻人开始流行\"反向消费\"，能省则省成了新风尚|黄金价格\
    连续上涨，金店门口排起了长队\n\
    高考=今年高考报名人数再创新高，考生们加油|考研成绩公布了，有人欢喜有人愁|教育部发文要求进一步\
    减轻中小学生课业负担|毕业季到了，简历投了几十份还没有回音|越来越多的高校开设了人工智能专业|老师\
    说期末考试不划重点，全班同学瞬间沉默|留学申请的 deadline 快到了，文书还没写完\n\
    体育=中国女排三比零战胜对手，晋级决赛|国足主场又输了，球迷们已经习惯了|马拉松比赛在周末开跑，\
    三万名跑者参加|乒乓球世界杯上国乒包揽了男女单打冠军|这位年轻的游泳运动员打破了亚洲纪录|CBA 季后\
    赛第二轮战况激烈，抢七大战一票难求\n\
    娱乐圈=这部新剧开播第一天播放量就破了一亿|某顶流的演唱会门票开售一分钟就被抢光了|综艺新一季的\
    嘉宾阵容公布，网友直呼期待|春节档票房突破八十亿，创造历史纪录|这首歌最近在短视频平台上火了，到处\
    都能听到|导演在采访中透露续集已经在筹备中了\n\
    城市生活=地铁新线路今天开通，早高峰通勤时间缩短了二十分钟|小区楼下新开了一家社区食堂，十块钱\
    就能吃饱|暴雨预警升级为橙色，请大家注意出行安全|外卖小哥冒雨送餐的视频感动了很多网友|共享单车\
    越来越多，停放问题也随之而来|志愿者们在周末清理了河道两边的垃圾\n\
    健康生活=医生提醒，长时间看手机容易导致颈椎问题|流感高发季节到了，建议大家及时接种疫苗|每天快走\
    三十分钟，对心血管健康很有帮助|熬夜真的会掉头发，这是我的亲身经历|体检报告出来了，医生让我少喝\
    奶茶多运动|最近很流行 citywalk，周末走上两万步一点都不累";
const OPINIONS: &str = "说实话，我觉得这件事没有那么简单|大家怎么看？欢迎在评论区讨论|转发这条微博，\
    希望更多人看到|作为一个普通打工人，我只想准时下班|不得不说，现在的变化真的太快了|有一说一，这次\
    确实做得不错|希望相关部门能够尽快给出回应|以上只是个人观点，不喜勿喷|To be honest, 这个结果我一点\
    都不意外|坐等后续，吃瓜群众已就位|我朋友就在现场，据说场面非常热闹|刚刚刷到这个消息，第一反应是：\
    真的假的|IMO 这才是真正的 game changer";
const OPENERS: &str = "【热点】|【快讯】|转发：|刚刚，|Breaking: |【深度】";
const POST_MENTIONS: &str = "@科技小灵通|@财经观察员|@体育快报|@吃瓜群众本瓜|@新闻小编|@数码老王";
const EMAILS: &str =
    "tips@example.com|editor@example.com|zhang.san@example.org|news-desk@example.net";
/// (source, weight): weibo is the most common.
const SOURCES: &[(&str, u32)] = &[("weibo", 50), ("zhihu", 20), ("tieba", 15), ("douban", 10)];
const SOURCE_NEWS_WEIGHT: u32 = 5;
const ALNUM: &[u8] = b"0123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
/// Made-up words are written with the CJK Unified Ideographs U+4E00..U+9FA5.
const WORD_CHAR_FIRST: u32 = 0x4E00;
const WORD_CHARS: u64 = 0x9FA6 - 0x4E00;
/// Vocabularies are at most this large: word indices then fit in a word's first two
/// characters, which keeps the words of a vocabulary distinct.
pub const MAX_VOCABULARY: u32 = 400_000_000;

struct Lists {
    memes: Vec<&'static str>,
    emoji: Vec<&'static str>,
    full_width: Vec<&'static str>,
    suffixes: Vec<&'static str>,
    danmu_mentions: Vec<&'static str>,
    themes: Vec<(&'static str, Vec<&'static str>)>,
    topics: Vec<(&'static str, Vec<&'static str>)>,
    opinions: Vec<&'static str>,
    openers: Vec<&'static str>,
    post_mentions: Vec<&'static str>,
    emails: Vec<&'static str>,
}

/// Splits a '|'-separated list, keeping empty entries (an empty suffix means "none").
fn split(s: &'static str) -> Vec<&'static str> {
    s.split('|').collect()
}

/// Splits lines of `name=list`.
fn split_lines(s: &'static str) -> Vec<(&'static str, Vec<&'static str>)> {
    s.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, list)| (name, split(list)))
        .collect()
}

static LISTS: LazyLock<Lists> = LazyLock::new(|| Lists {
    memes: split(MEMES),
    emoji: split(EMOJI),
    full_width: split(FULL_WIDTH),
    suffixes: split(THEME_SUFFIXES),
    danmu_mentions: split(DANMU_MENTIONS),
    themes: split_lines(THEMES),
    topics: split_lines(TOPICS),
    opinions: split(OPINIONS),
    openers: split(OPENERS),
    post_mentions: split(POST_MENTIONS),
    emails: split(EMAILS),
});

#[derive(Serialize)]
struct Danmu<'a> {
    room_id: &'a str,
    user_id: &'a str,
    ts: i64,
    text: &'a str,
}

#[derive(Serialize)]
struct Post<'a> {
    id: &'a str,
    source: &'a str,
    user_id: &'a str,
    ts: i64,
    text: &'a str,
}

/// Text under construction with a limit in characters.
struct Text {
    buf: String,
    chars: usize,
    max: usize,
}

impl Text {
    fn new(max: usize) -> Self {
        Text {
            buf: String::with_capacity(max * 3),
            chars: 0,
            max,
        }
    }

    /// Appends `s` if it fits within the limit; says whether it did.
    fn push(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars + n > self.max {
            return false;
        }
        self.buf.push_str(s);
        self.chars += n;
        true
    }
}

/// A deterministic source of sample records: the same seed gives the same records.
pub struct TrafficGen {
    rng: SmallRng,
    /// Cumulative Zipf weights of rooms r1000, r1001, … (r1000 is the hottest).
    room_weights: Vec<f64>,
    /// Made-up words added to each record; 0 for none.
    vocabulary: u32,
    /// Texts the posts take in turn instead of made-up ones; empty for made-up ones.
    post_texts: Vec<String>,
    next_post: u64,
    next_bad: u64,
}

fn pick<'a>(rng: &mut SmallRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

impl TrafficGen {
    /// A generator for rooms `r1000..r{1000+rooms-1}` (at least one room).
    pub fn new(seed: u64, rooms: u32) -> Self {
        let mut total = 0.0;
        let room_weights = (0..rooms.max(1))
            .map(|rank| {
                total += 1.0 / f64::from(rank + 1);
                total
            })
            .collect();
        TrafficGen {
            rng: SmallRng::seed_from_u64(seed),
            room_weights,
            vocabulary: 0,
            post_texts: Vec::new(),
            next_post: 0,
            next_bad: 0,
        }
    }

    /// Adds one or two words, drawn Zipf-like from `words` made-up ones, to each danmu and post
    /// (at most [`MAX_VOCABULARY`]); 0, the default, adds none and changes nothing else.
    pub fn with_vocabulary(mut self, words: u32) -> Self {
        self.vocabulary = words.min(MAX_VOCABULARY);
        self
    }

    /// Posts take their texts from `texts`, one after another and round again (real text, say);
    /// empty, the default, keeps made-up ones.
    pub fn with_post_texts(mut self, texts: Vec<String>) -> Self {
        self.post_texts = texts;
        self
    }

    /// One danmu: (Kafka key = room id like "r1001", JSON value).
    pub fn danmu(&mut self, ts: i64) -> (String, String) {
        let room = self.room();
        let text = self.text_for_room(room);
        let room_id = format!("r{room}");
        let user_id = self.user();
        let value = Danmu {
            room_id: &room_id,
            user_id: &user_id,
            ts,
            text: &text,
        };
        let json = serde_json::to_string(&value).expect("a struct of strings always serializes");
        (room_id, json)
    }

    /// One post: (Kafka key = source, JSON value).
    pub fn post(&mut self, ts: i64) -> (String, String) {
        let total = SOURCES.iter().map(|s| s.1).sum::<u32>() + SOURCE_NEWS_WEIGHT;
        let mut roll = self.rng.random_range(0..total);
        let mut source = "news";
        for &(name, weight) in SOURCES {
            if roll < weight {
                source = name;
                break;
            }
            roll -= weight;
        }
        let nth = self.next_post;
        self.next_post += 1;
        let id = format!("p-{}", self.next_post);
        let user_id = self.user();
        let made_up;
        let text = match self.post_texts.len() {
            0 => {
                made_up = self.post_text();
                made_up.as_str()
            }
            n => self.post_texts[(nth % n as u64) as usize].as_str(),
        };
        let value = Post {
            id: &id,
            source,
            user_id: &user_id,
            ts,
            text,
        };
        let json = serde_json::to_string(&value).expect("a struct of strings always serializes");
        (source.to_owned(), json)
    }

    /// A malformed record (rotating through: not JSON, invalid UTF-8 bytes, missing "text",
    /// "ts" as a string, room_id as an array): (key, value bytes).
    pub fn bad(&mut self) -> (String, Vec<u8>) {
        let room = format!("r{}", self.room());
        let kind = self.next_bad % 5;
        self.next_bad += 1;
        // Each value is a good danmu but for one defect.
        let value = match kind {
            0 => {
                format!(r#"{{"room_id":"{room}","user_id":"u1","ts":1763780000000,"text":"没写完"#)
            }
            1 => {
                let head = format!(r#"{{"room_id":"{room}","user_id":"u1","ts":1763780000000,"#);
                let mut v = head.into_bytes();
                v.extend_from_slice(b"\"text\":\"\xff\xfe\xc3\x28\"}");
                return (room, v);
            }
            2 => format!(r#"{{"room_id":"{room}","user_id":"u1","ts":1763780000000}}"#),
            3 => format!(
                r#"{{"room_id":"{room}","user_id":"u1","ts":"1763780000000","text":"666"}}"#
            ),
            _ => format!(
                r#"{{"room_id":["{room}"],"user_id":"u1","ts":1763780000000,"text":"666"}}"#
            ),
        };
        (room, value.into_bytes())
    }

    /// Just a danmu text (of a random room), for benchmarks.
    pub fn danmu_text(&mut self) -> String {
        let room = self.room();
        self.text_for_room(room)
    }

    /// Just a post text, for benchmarks.
    pub fn post_text(&mut self) -> String {
        let lists = &*LISTS;
        let rng = &mut self.rng;
        let (tag, fragments) = &lists.topics[rng.random_range(0..lists.topics.len())];
        let mut extras: Vec<String> = Vec::new();
        if rng.random_bool(0.25) {
            extras.push(format!(" {} ", Self::url(rng)));
        }
        if rng.random_bool(0.2) {
            extras.push(format!("{} ", pick(rng, &lists.post_mentions)));
        }
        if rng.random_bool(0.08) {
            extras.push(format!("联系邮箱 {} ", pick(rng, &lists.emails)));
        }
        let mut text = Text::new(POST_MAX_CHARS);
        Self::push_vocabulary(rng, self.vocabulary, &mut text);
        if rng.random_bool(0.35) {
            let hashtag = format!("#{tag}#");
            if rng.random_bool(0.5) {
                text.push(&hashtag);
            } else {
                extras.push(hashtag);
            }
        }
        if rng.random_bool(0.3) {
            text.push(pick(rng, &lists.openers));
        }
        let target = rng.random_range(POST_MIN_CHARS + 10..=POST_MAX_CHARS - 20);
        // Sentences without repeats: mostly from the topic, some general opinions.
        let (mut own, mut others) = (fragments.clone(), lists.opinions.clone());
        while text.chars < target && !(own.is_empty() && others.is_empty()) {
            let from_own = !own.is_empty() && (others.is_empty() || rng.random_bool(0.7));
            let pool = if from_own { &mut own } else { &mut others };
            let sentence = pool.swap_remove(rng.random_range(0..pool.len()));
            let end = ["。", "！", "？", "。"][rng.random_range(0..4)];
            if text.push(&format!("{sentence}{end}")) && !extras.is_empty() && rng.random_bool(0.3)
            {
                let extra = extras.swap_remove(rng.random_range(0..extras.len()));
                text.push(&extra);
            }
        }
        for extra in extras {
            text.push(&extra);
        }
        while text.chars < POST_MIN_CHARS {
            text.push("大家怎么看？");
        }
        text.buf
    }

    fn url(rng: &mut SmallRng) -> String {
        fn alnum(rng: &mut SmallRng, n: usize) -> String {
            (0..n)
                .map(|_| char::from(ALNUM[rng.random_range(0..ALNUM.len())]))
                .collect()
        }
        match rng.random_range(0..4) {
            0 => {
                let uid = rng.random_range(1_000_000_000..10_000_000_000u64);
                format!("https://weibo.com/{uid}/{}", alnum(rng, 9))
            }
            1 => format!("http://t.cn/{}", alnum(rng, 7)),
            2 => {
                let question = rng.random_range(100_000_000..1_000_000_000u64);
                format!("https://www.zhihu.com/question/{question}")
            }
            _ => format!("https://www.bilibili.com/video/BV1{}", alnum(rng, 9)),
        }
    }

    /// One or two words of the vocabulary, each followed by a space; nothing without one.
    fn push_vocabulary(rng: &mut SmallRng, vocabulary: u32, text: &mut Text) {
        if vocabulary == 0 {
            return;
        }
        for _ in 0..rng.random_range(1..=2) {
            // Rank r with probability ≈ 1 / ((r + 1) ln(N + 1)): Zipf, by inverting its
            // continuous approximation, with no table of N weights.
            let n = f64::from(vocabulary);
            let rank = ((n + 1.0).powf(rng.random::<f64>()) - 1.0) as u32;
            text.push(&word(rank.min(vocabulary - 1)));
            text.push(" ");
        }
    }

    /// A room number, Zipf-distributed over the rooms: the room of `danmu`'s key.
    pub fn room(&mut self) -> u32 {
        let total = *self
            .room_weights
            .last()
            .expect("there is at least one room");
        let u = self.rng.random::<f64>() * total;
        let rank = self.room_weights.partition_point(|&c| c <= u);
        1000 + rank.min(self.room_weights.len() - 1) as u32
    }

    fn user(&mut self) -> String {
        format!("u{}", self.rng.random_range(1..=50_000u32))
    }

    fn text_for_room(&mut self, room: u32) -> String {
        let lists = &*LISTS;
        let rng = &mut self.rng;
        let theme = room.wrapping_mul(2_654_435_761) as usize >> 7;
        let (theme, words) = &lists.themes[theme % lists.themes.len()];
        let mut text = Text::new(DANMU_MAX_CHARS);
        Self::push_vocabulary(rng, self.vocabulary, &mut text);
        if rng.random_bool(0.08) {
            text.push(&format!("{} ", pick(rng, &lists.danmu_mentions)));
        }
        for i in 0..rng.random_range(1..=3) {
            let sep = if i == 0 {
                ""
            } else {
                ["", "", " ", "，", "\u{3000}", "！"][rng.random_range(0..6)]
            };
            let piece = match rng.random_range(0..20) {
                0..=8 => pick(rng, &lists.memes).to_owned(),
                9..=15 => format!("{}{}", pick(rng, words), pick(rng, &lists.suffixes)),
                16 => "哈".repeat(rng.random_range(3..=8)),
                17 => "6".repeat(rng.random_range(3..=6)),
                18 => pick(rng, &lists.full_width).to_owned(),
                _ => (0..rng.random_range(1..=3))
                    .map(|_| pick(rng, &lists.emoji))
                    .collect(),
            };
            text.push(&format!("{sep}{piece}"));
        }
        if rng.random_bool(0.1) {
            let tag = if rng.random_bool(0.6) {
                format!(" #{theme}#")
            } else {
                format!(" #{}", pick(rng, words))
            };
            text.push(&tag);
        }
        if rng.random_bool(0.15) {
            text.push(pick(rng, &lists.emoji));
        }
        while text.chars < DANMU_MIN_CHARS {
            text.push(if rng.random_bool(0.5) { "哈" } else { "！" });
        }
        text.buf
    }
}

/// Made-up word number `index` (below [`MAX_VOCABULARY`]): 2–4 CJK characters, the same for
/// the same index and different for different ones (the first two characters encode the index,
/// the rest are derived from it).
pub fn word(index: u32) -> String {
    let index = u64::from(index);
    let mix = splitmix64(index);
    let low = index % WORD_CHARS;
    // Shifted by a function of `low`, so that popular words do not all share a character.
    let high = (index / WORD_CHARS + splitmix64(low) % WORD_CHARS) % WORD_CHARS;
    let extra = [mix >> 8, mix >> 32].map(|bits| bits % WORD_CHARS);
    [low, high]
        .into_iter()
        .chain(extra.into_iter().take((mix % 3) as usize))
        .map(|offset| char::from_u32(WORD_CHAR_FIRST + offset as u32).expect("a CJK ideograph"))
        .collect()
}

/// The SplitMix64 finaliser: a fixed, well-mixing function of a number.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Whether `value` has the expected shape: `key_field`, `user_id` and `text` strings, `ts`
    /// an integer.
    fn well_formed(value: &[u8], key_field: &str) -> bool {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(value) else {
            return false;
        };
        map.get(key_field).is_some_and(Value::is_string)
            && map.get("ts").is_some_and(Value::is_i64)
            && map.get("text").is_some_and(Value::is_string)
            && map.get("user_id").is_some_and(Value::is_string)
    }

    #[test]
    fn same_seed_same_output() {
        let (mut a, mut b) = (TrafficGen::new(7, 100), TrafficGen::new(7, 100));
        for ts in 0..200 {
            assert_eq!(a.danmu(ts), b.danmu(ts));
            assert_eq!(a.post(ts), b.post(ts));
            assert_eq!(a.bad(), b.bad());
        }
        let (mut a, mut b) = (TrafficGen::new(7, 100), TrafficGen::new(7, 100));
        assert_eq!(a.post_text(), b.post_text());
        assert_eq!(a.danmu_text(), b.danmu_text());
        let mut c = TrafficGen::new(8, 100);
        let texts = |g: &mut TrafficGen| (0..20).map(|_| g.danmu_text()).collect::<Vec<_>>();
        assert_ne!(texts(&mut a), texts(&mut c));
    }

    #[test]
    fn posts_take_given_texts_in_turn_and_stay_well_formed() {
        let texts = vec!["第一条 \"评论\"".to_owned(), "second review".to_owned()];
        let mut traffic = TrafficGen::new(7, 100).with_post_texts(texts.clone());
        let got: Vec<String> = (0..5)
            .map(|ts| {
                let (_, json) = traffic.post(ts);
                assert!(well_formed(json.as_bytes(), "source"), "{json}");
                let value: serde_json::Value = serde_json::from_str(&json).unwrap();
                value["text"].as_str().unwrap().to_owned()
            })
            .collect();
        let want = [0, 1, 0, 1, 0].map(|i| texts[i].as_str());
        assert_eq!(got, want);
    }

    /// The golden records: the first rounds (danmu, post, bad record) of seed 7, one record a
    /// line, as generated before vocabularies existed. Rewrite it after a deliberate change
    /// with `TRENDSTREAM_BLESS=1 cargo test --lib generate::traffic`, and review its diff.
    const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/traffic-seed-7.txt");
    const GOLDEN_ROUNDS: i64 = 10;

    /// The first `rounds` rounds of seed 7 without a vocabulary, one record a line:
    /// `<kind> <key> <value>`, a value that is not UTF-8 shown with its bytes escaped.
    fn golden_lines(rounds: i64) -> Vec<String> {
        let mut traffic = TrafficGen::new(7, 100).with_vocabulary(0);
        let mut lines = Vec::new();
        for ts in 0..rounds {
            let (key, value) = traffic.danmu(ts);
            lines.push(format!("danmu {key} {value}"));
            let (key, value) = traffic.post(ts);
            lines.push(format!("post {key} {value}"));
            let (key, value) = traffic.bad();
            let value = String::from_utf8(value)
                .unwrap_or_else(|err| err.as_bytes().escape_ascii().to_string());
            lines.push(format!("bad {key} {value}"));
        }
        lines
    }

    #[test]
    fn without_a_vocabulary_the_records_are_those_of_before() {
        let lines = golden_lines(GOLDEN_ROUNDS);
        if std::env::var_os("TRENDSTREAM_BLESS").is_some() {
            std::fs::write(GOLDEN_PATH, lines.join("\n") + "\n").expect("golden file written");
        }
        let golden = std::fs::read_to_string(GOLDEN_PATH).expect("golden file");
        let golden: Vec<&str> = golden.lines().collect();
        assert_eq!(lines.len(), golden.len(), "records in {GOLDEN_PATH}");
        for (i, (line, expected)) in lines.iter().zip(&golden).enumerate() {
            assert_eq!(
                line,
                expected,
                "record {i} (line {}) of {GOLDEN_PATH}",
                i + 1
            );
        }
    }

    #[test]
    fn two_runs_with_the_same_seed_give_the_same_records() {
        assert_eq!(golden_lines(300), golden_lines(300));
    }

    #[test]
    fn made_up_words_are_distinct_and_two_to_four_ideographs_long() {
        let indices = (0..200_000).chain(MAX_VOCABULARY - 1_000..MAX_VOCABULARY);
        let mut seen = std::collections::HashSet::new();
        for i in indices {
            let w = word(i);
            let chars = w.chars().count();
            assert!((2..=4).contains(&chars), "{i}: {w}");
            assert!(
                w.chars().all(|c| ('\u{4E00}'..='\u{9FA5}').contains(&c)),
                "{w}"
            );
            assert!(seen.insert(w.clone()), "{i}: {w} again");
            assert_eq!(word(i), w);
        }
    }

    #[test]
    fn a_vocabulary_adds_words_whose_variety_grows_with_its_size() {
        // The first word of each text is a made-up one: the distinct ones among 10,000 texts.
        let first_words = |words: u32| {
            let mut traffic = TrafficGen::new(5, 20).with_vocabulary(words);
            let mut seen = std::collections::HashSet::new();
            for ts in 0..5_000 {
                for value in [traffic.danmu(ts).1, traffic.post(ts).1] {
                    let v: Value = serde_json::from_str(&value).expect("valid JSON");
                    let text = v["text"].as_str().expect("text");
                    seen.insert(text.split(' ').next().expect("a word").to_owned());
                }
            }
            seen
        };
        let vocabulary: std::collections::HashSet<String> = (0..10).map(word).collect();
        assert!(first_words(10).is_subset(&vocabulary));
        let many = first_words(1_000_000).len();
        assert!(many > 3_000, "{many} distinct words");
    }

    #[test]
    fn text_lengths_are_within_bounds() {
        let mut traffic = TrafficGen::new(1, 50);
        for _ in 0..5_000 {
            let danmu = traffic.danmu_text().chars().count();
            assert!(
                (DANMU_MIN_CHARS..=DANMU_MAX_CHARS).contains(&danmu),
                "danmu of {danmu}"
            );
        }
        for _ in 0..2_000 {
            let post = traffic.post_text().chars().count();
            assert!(
                (POST_MIN_CHARS..=POST_MAX_CHARS).contains(&post),
                "post of {post}"
            );
        }
    }

    #[test]
    fn records_are_valid_json_with_the_right_types() {
        let mut traffic = TrafficGen::new(2, 20);
        for ts in 1_763_780_000_000..1_763_780_002_000 {
            let (key, value) = traffic.danmu(ts);
            assert!(well_formed(value.as_bytes(), "room_id"), "{value}");
            let v: Value = serde_json::from_str(&value).expect("valid JSON");
            assert_eq!(v["room_id"], key.as_str());
            assert_eq!(v["ts"], ts);
            let room: u32 = key[1..].parse().expect("room number");
            assert!(
                key.starts_with('r') && (1000..1020).contains(&room),
                "{key}"
            );

            let (key, value) = traffic.post(ts);
            assert!(well_formed(value.as_bytes(), "source"), "{value}");
            let v: Value = serde_json::from_str(&value).expect("valid JSON");
            assert_eq!(v["source"], key.as_str());
            assert!(v["id"].as_str().is_some_and(|id| id.starts_with("p-")));
            assert!(["weibo", "zhihu", "tieba", "douban", "news"].contains(&key.as_str()));
        }
    }

    #[test]
    fn bad_records_are_bad() {
        let mut traffic = TrafficGen::new(3, 10);
        let mut invalid_utf8 = 0;
        for _ in 0..50 {
            let (key, value) = traffic.bad();
            assert!(key.starts_with('r'));
            assert!(
                !well_formed(&value, "room_id"),
                "{}",
                String::from_utf8_lossy(&value)
            );
            invalid_utf8 += usize::from(std::str::from_utf8(&value).is_err());
        }
        assert_eq!(invalid_utf8, 10);
    }

    #[test]
    fn rooms_are_skewed_but_all_get_traffic() {
        let rooms = 50;
        let mut traffic = TrafficGen::new(4, rooms);
        let mut counts = vec![0u32; rooms as usize];
        for _ in 0..10_000 {
            let (key, _) = traffic.danmu(0);
            let room: usize = key[1..].parse().expect("room number");
            counts[room - 1000] += 1;
        }
        let max = *counts.iter().max().expect("rooms");
        let average = 10_000 / rooms;
        assert!(max > 3 * average, "max {max}, average {average}");
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }
}
