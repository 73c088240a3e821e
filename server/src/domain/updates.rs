//! Applying `UpdateTopic` and `UpdateSubscription`: only the named
//! settings are copied, so updates of different settings racing through
//! different reads both hold.

use super::catalog::Catalog;
use super::command::{SubscriptionConfig, SubscriptionSetting, TopicConfig, TopicSetting};
use super::outcome::{Applied, Rejection, Response, Write};

/// Sets the named settings of a topic; the leader checked their values.
pub(super) fn topic(catalog: &mut Catalog, name: &str, config: &TopicConfig, settings: &[TopicSetting]) -> Applied {
    let Some(id) = catalog.topic(name).map(|t| t.id) else {
        return Applied::rejected(Rejection::TopicNotFound { name: name.to_owned() });
    };
    let Some(topic) = catalog.topic_by_id_mut(id) else {
        return Applied::rejected(Rejection::TopicNotFound { name: name.to_owned() });
    };
    for setting in settings {
        setting.copy(config, &mut topic.config);
    }
    let topic = topic.clone();
    Applied { writes: vec![Write::PutTopic(topic.clone())], response: Response::TopicUpdated(topic) }
}

/// Sets the named settings of a subscription. A dead-letter topic must
/// exist when the update applies, as when a subscription is created.
pub(super) fn subscription(
    catalog: &mut Catalog,
    name: &str,
    config: &SubscriptionConfig,
    settings: &[SubscriptionSetting],
) -> Applied {
    let Some(id) = catalog.subscription(name).map(|s| s.id) else {
        return Applied::rejected(Rejection::SubscriptionNotFound { name: name.to_owned() });
    };
    let dead_letter = &config.dead_letter_topic;
    if settings.contains(&SubscriptionSetting::DeadLetterPolicy)
        && !dead_letter.is_empty()
        && catalog.topic(dead_letter).is_none()
    {
        return Applied::rejected(Rejection::TopicNotFound { name: dead_letter.clone() });
    }
    let Some(subscription) = catalog.subscription_by_id_mut(id) else {
        return Applied::rejected(Rejection::SubscriptionNotFound { name: name.to_owned() });
    };
    if settings.contains(&SubscriptionSetting::DeadLetterPolicy) && *dead_letter == subscription.topic {
        let topic = subscription.topic.clone();
        return Applied::rejected(Rejection::DeadLetterLoop { subscription: name.to_owned(), topic });
    }
    for setting in settings {
        setting.copy(config, &mut subscription.config);
    }
    let subscription = subscription.clone();
    Applied {
        writes: vec![Write::PutSubscription(subscription.clone())],
        response: Response::SubscriptionUpdated(subscription),
    }
}

/// Whether `held` has `wanted`'s values for each of `settings`, whatever
/// its other settings (another update may have changed those meanwhile):
/// how a caller sees its own update taken up by a group's replica.
pub fn holds<C: Clone + PartialEq, S: Copy>(
    held: &C,
    wanted: &C,
    settings: &[S],
    copy: impl Fn(S, &C, &mut C),
) -> bool {
    let mut expected = held.clone();
    settings.iter().for_each(|&setting| copy(setting, wanted, &mut expected));
    expected == *held
}
